import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { MqttClient } from 'mqtt';
import { IdentityCache } from '../../../firmware/auth/cache.js';
import { parseScopeDocument } from '../../../firmware/auth/identity.js';
import { RingLog } from '../../../firmware/store/log.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { mqttChild, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';
import { notifySocket } from '../../support/notify-socket.js';
import { bundleGateway, isReady, startGateway, type GatewayProcess } from '../../support/gateway-process.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const UNIT = join(ROOT, 'scripts/systemd/outpost.service');
const GATEWAY_ID = 'outpost-sim';
/** Children publishing at once, and QoS 1 publishes each keeps in flight: enough to have PUBACKs pending at SIGTERM. */
const CHILDREN = 3;
const INFLIGHT_PER_CHILD = 8;
/** Acknowledged publishes before the SIGTERM: the stop happens under steady load, not at start-up. */
const ACKED_BEFORE_STOP = 300;
/** WATCHDOG_USEC given to the gateway: a ping every 100 ms, so several arrive in a short run. */
const WATCHDOG_USEC = 200_000;

t.test('systemd-analyze verify accepts the unit without a single warning', async (t) => {
  const analyze = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  if (analyze.error) {
    t.comment(
      `skipped: systemd-analyze cannot run here (${analyze.error.message}); ` +
        "scripts/install-system-deps.sh installs Debian's systemd",
    );
    return;
  }
  // verify checks that ExecStart's binary exists: point the install prefix at a tree that has it.
  const prefix = tempDir(t);
  writeFileSync(join(prefix, 'launch'), '#!/bin/sh\n', { mode: 0o755 });
  mkdirSync(join(prefix, 'releases'));
  const unit = join(prefix, 'outpost.service');
  writeFileSync(unit, readFileSync(UNIT, 'utf8').replaceAll('/opt/outpost', prefix));
  const run = spawnSync('systemd-analyze', ['verify', unit], { encoding: 'utf8' });
  t.equal(run.status, 0, run.stderr);
  // verify exits 0 on a misspelt setting and only warns: any output is a failure.
  t.equal(`${run.stdout}${run.stderr}`.trim(), '', 'no warnings');
  const text = readFileSync(UNIT, 'utf8');
  for (const line of [
    'Type=notify',
    'WatchdogSec=',
    'Restart=always',
    'StateDirectory=outpost',
    'ProtectSystem=strict',
    'NoNewPrivileges=yes',
    'PrivateTmp=yes',
    'SupplementaryGroups=gpio i2c dialout',
    'After=network-online.target time-sync.target',
    'Wants=network-online.target time-sync.target',
    'UMask=0077',
    'CapabilityBoundingSet=\n',
    'SystemCallFilter=@system-service',
    'ProtectProc=invisible',
    'ProtectKernelTunables=yes',
    'MemoryMax=',
    'DevicePolicy=closed',
    'DeviceAllow=char-gpiochip rw',
    'DeviceAllow=char-i2c rw',
  ]) {
    t.ok(text.includes(`\n${line}`), line);
  }
});

t.test('systemd-analyze security rates the unit at most 3.0 ("OK")', async (t) => {
  const run = spawnSync('systemd-analyze', ['security', '--offline=yes', '--no-pager', UNIT], { encoding: 'utf8' });
  if (run.error) return void t.comment(`skipped: systemd-analyze cannot run here (${run.error.message})`);
  const match = /Overall exposure level for outpost\.service: (\d+\.\d) (\w+)/.exec(run.stdout);
  t.ok(match !== null, 'systemd-analyze prints the overall exposure', { stderr: run.stderr });
  t.comment(`exposure ${match?.[1]} ${match?.[2]}`);
  t.ok(Number(match?.[1]) <= 3.0, `exposure ${match?.[1]} ${match?.[2]}`);
});

async function seedIdentities(dataDir: string, keys: Map<string, string>): Promise<void> {
  const cache = await IdentityCache.open(dataDir);
  const children = [...keys].map(([deviceId, key]) => ({ deviceId, key }));
  await cache.applyScope(parseScopeDocument(scopeDocument(GATEWAY_ID, 1, children), GATEWAY_ID), Date.now());
  cache.close();
}

/** Publishes QoS 1 until the connection goes; every body whose PUBACK arrived is added to `acked`. */
async function publishUntilClosed(
  client: MqttClient,
  deviceId: string,
  acked: Set<string>,
  counter: { n: number },
): Promise<void> {
  // With reconnect off, mqtt.js keeps unacknowledged publishes pending forever; end(true) fails them.
  client.on('close', () => client.end(true));
  const loop = async () => {
    for (;;) {
      const body = `${deviceId}:${counter.n++}`;
      try {
        await client.publishAsync(`devices/${deviceId}/messages/events/`, body, { qos: 1 });
      } catch {
        return;
      }
      acked.add(body);
    }
  };
  await Promise.all(Array.from({ length: INFLIGHT_PER_CHILD }, loop));
}

/** The bundled gateway on the sim board under a NOTIFY_SOCKET and WATCHDOG_USEC, as systemd starts it. */
function startUnderSystemd(t: Test, bundle: string, dataDir: string, notifyPath: string): GatewayProcess {
  // The hub's per-child rate limit (50/s) would drop the load silently (MQTT 3.1.1 has no refusal for a
  // publish): lift it, so every publish is either acknowledged or cut off by the stop.
  const boardDir = tempDir(t);
  cpSync(join(ROOT, 'boards'), join(boardDir, 'boards'), { recursive: true });
  writeFileSync(
    join(boardDir, 'board.json'),
    JSON.stringify({
      board: 'sim',
      identity: { gatewayId: GATEWAY_ID },
      hub: { publishRatePerSec: 100_000, publishBurst: 100_000 },
    }),
  );
  return startGateway(bundle, ['run', '--board', join(boardDir, 'board.json')], {
    OUTPOST_DATA_DIR: dataDir,
    OUTPOST_HUB_PORT: '0',
    NOTIFY_SOCKET: notifyPath,
    WATCHDOG_USEC: String(WATCHDOG_USEC),
  });
}

/** Every body in the upstream lane of the log in `dataDir`. */
async function storedBodies(dataDir: string): Promise<Set<string>> {
  const log = await RingLog.open({ dir: dataDir });
  const lane = await log.lane(UPSTREAM_LANE);
  const stored = new Set<string>();
  for (let from = 1; ;) {
    const batch = await lane.read(from, { recordsMax: 1000 });
    if (batch.length === 0) break;
    for (const r of batch) stored.add(r.body.toString());
    from = batch[batch.length - 1]!.seq + 1;
  }
  await log.close();
  return stored;
}

t.test(
  'under systemd: READY, STATUS and WATCHDOG; SIGTERM under QoS 1 load loses nothing acknowledged',
  { timeout: 90_000 },
  async (t) => {
    const notify = notifySocket(t);
    await notify.ready;
    const dataDir = tempDir(t);
    const keys = new Map(Array.from({ length: CHILDREN }, (_, i) => [`child-${i}`, newKey()]));
    await seedIdentities(dataDir, keys);
    const bundle = await bundleGateway(tempDir(t));
    const gw = startUnderSystemd(t, bundle, dataDir, notify.path);
    const ready = await gw.waitFor(isReady, 'ready');
    const hubPort = ready.hubPort as number;

    const acked = new Set<string>();
    const counter = { n: 0 };
    const clients = await Promise.all([...keys].map(([id, key]) => mqttChild(hubPort, id, sasPassword(id, key))));
    const publishing = clients.map((c, i) => publishUntilClosed(c, `child-${i}`, acked, counter));
    const deadline = Date.now() + 60_000;
    while (acked.size < ACKED_BEFORE_STOP && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    t.ok(acked.size >= ACKED_BEFORE_STOP, `${acked.size} publishes acknowledged before the stop`);
    // Two watchdog pings before the stop, however fast the load was acknowledged (a fast run stopped before the
    // second ping was due).
    const pings = () => notify.messages().filter((m) => m === 'WATCHDOG=1').length;
    while (pings() < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));

    const stopAt = Date.now();
    gw.proc.kill('SIGTERM');
    t.equal(await gw.exited(), 0, gw.output());
    const stopMs = Date.now() - stopAt;
    await Promise.all(publishing);
    t.ok(stopMs < 15_000, `stopped in ${stopMs} ms, within main.ts's bound`);
    t.ok(
      counter.n > acked.size,
      `${counter.n - acked.size} publishes were in flight or refused at the stop (not acknowledged)`,
    );

    const stored = await storedBodies(dataDir);
    const lost = [...acked].filter((body) => !stored.has(body));
    t.same(
      lost.slice(0, 10),
      [],
      `every one of ${acked.size} acknowledged publishes is in the log after the stop (${lost.length} lost)`,
    );

    // systemd-notify ends each message with BARRIER=1; drop those to see ours.
    const messages = notify.messages().filter((m) => m !== 'BARRIER=1');
    t.match(
      messages[0],
      /^READY=1\|STATUS=link disabled, backlog \d+ rec \/ \d+ B \(oldest \d+s\), quota [\d.]+%, 0 children$/,
      'READY=1 first, with a status line',
    );
    t.ok(messages.filter((m) => m === 'WATCHDOG=1').length >= 2, 'WATCHDOG=1 pings from the event loop');
    t.match(messages[messages.length - 1], /STOPPING=1\|STATUS=stopping/, 'STOPPING=1 on SIGTERM');
  },
);
