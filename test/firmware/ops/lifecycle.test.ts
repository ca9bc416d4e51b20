import t from 'tap';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, cpSync, openSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { IdentityCache } from '../../../firmware/auth/cache.js';
import { parseScopeDocument } from '../../../firmware/auth/identity.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { mqttChild, newKey, sasPassword, scopeDocument, until } from '../../support/hub-fixture.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { createTestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';
import { setTimeout as sleep } from 'node:timers/promises';
import type { MqttClient } from 'mqtt';
import {
  READY_TIMEOUT_MS as READY_WAIT_MS,
  bundleGateway,
  isReady,
  startGateway,
} from '../../support/gateway-process.js';

/** The gateway process through start-up and stop, as systemd and a modem hook drive it. */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const GATEWAY_ID = 'gw-life';
/** The README's promise for a stop on SIGTERM (main.ts's STOP_TIMEOUT_MS); systemd kills at 20 s. */
const STOP_BUDGET_MS = 15_000;
/** Child publishes acknowledged after the link went dark: the pump has them in flight, never acked. */
const PUBLISHES_INTO_THE_HOLE = 20;

function boardDir(t: Parameters<typeof tempDir>[0], board: Record<string, unknown>): string {
  const dir = tempDir(t);
  cpSync(join(ROOT, 'boards'), join(dir, 'boards'), { recursive: true });
  writeFileSync(join(dir, 'board.json'), JSON.stringify(board));
  return join(dir, 'board.json');
}

t.test('SIGUSR2 during start-up (a modem hook at boot) does not kill the gateway', async (t) => {
  // The hub's TLS certificate and key are FIFOs: start-up blocks reading them until the test writes them,
  // so the signal lands while runtime.start() is certainly under way.
  const dir = tempDir(t);
  const certPath = join(dir, 'hub.crt');
  const keyPath = join(dir, 'hub.key');
  for (const fifo of [certPath, keyPath]) t.equal(spawnSync('mkfifo', [fifo]).status, 0, `mkfifo ${fifo}`);
  const ca = await createTestCa();
  t.teardown(() => ca.dispose());
  const server = await ca.issue('localhost', ['localhost']);
  const hub = { tls: { port: 0, certPath, keyPath } };
  const board = boardDir(t, { board: 'sim', identity: { gatewayId: GATEWAY_ID }, hub });
  const gw = startGateway(await bundleGateway(tempDir(t)), ['run', '--board', board], {
    OUTPOST_DATA_DIR: tempDir(t),
    OUTPOST_HUB_PORT: '0',
    OUTPOST_LOG_LEVEL: 'debug',
  });
  // The gateway reads the TLS files while it loads the board, before anything else starts. A reader blocked
  // in open() on a FIFO already counts as its reader, so a non-blocking open for writing succeeds exactly
  // when the gateway is stuck there, mid start-up: the signal goes then. Each FIFO is then replaced by a
  // regular file (the gateway keeps the FIFO it opened), so later reads of the same path find the PEM.
  await feedFifo(certPath, server.cert, () => gw.proc.kill('SIGUSR2'));
  await feedFifo(keyPath, server.key, () => {});
  await gw.waitFor(isReady, 'ready after the SIGUSR2');
  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited(), 0, gw.output());
});

/** Waits for a reader blocked on `fifo`, runs `then`, and hands that reader `content`. */
async function feedFifo(fifo: string, content: string, then: () => void): Promise<void> {
  let fd: number | undefined;
  await until(
    `a reader blocked on ${fifo}`,
    () => {
      try {
        fd = openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK);
        return true;
      } catch {
        return false;
      }
    },
    30_000,
  );
  unlinkSync(fifo);
  writeFileSync(fifo, content);
  then();
  writeSync(fd!, content);
  closeSync(fd!);
}

/** A gateway on the sim board with an azure uplink to the IoT Hub emulator through a fault proxy. */
async function azureGateway(t: Parameters<typeof tempDir>[0], childKey: string) {
  const iothub = await IotHubEmulator.start();
  t.teardown(() => iothub.stop());
  const proxy = await FaultProxy.start({ targetPort: iothub.port });
  t.teardown(() => proxy.close());
  const dataDir = tempDir(t);
  const cache = await IdentityCache.open(dataDir);
  const scope = scopeDocument(GATEWAY_ID, 1, [{ deviceId: 'child-1', key: childKey }]);
  await cache.applyScope(parseScopeDocument(scope, GATEWAY_ID), Date.now());
  cache.close();
  const caFile = join(tempDir(t), 'ca.pem');
  writeFileSync(caFile, iothub.ca.cert);
  const connectionString = iothub.addDevice(GATEWAY_ID, `localhost:${proxy.port}`);
  const uplink = { protocol: 'azure', connectionString, caFile };
  const board = boardDir(t, { board: 'sim', identity: { gatewayId: GATEWAY_ID }, uplink });
  const env = { OUTPOST_DATA_DIR: dataDir, OUTPOST_HUB_PORT: '0' };
  const start = async () => startGateway(await bundleGateway(tempDir(t)), ['run', '--board', board], env);
  return { iothub, proxy, start };
}

/** A QoS 1 publish: 'acknowledged', or 'connection closed' (mqtt.js would leave the publish pending forever). */
function publishAcked(child: MqttClient, body: string): Promise<string> {
  const closed = new Promise<string>((resolve) => child.once('close', () => resolve('connection closed')));
  const acked = child.publishAsync('devices/child-1/messages/events/', body, { qos: 1 }).then(() => 'acknowledged');
  return Promise.race([acked, closed]);
}

async function timedStop(gw: ReturnType<typeof startGateway>): Promise<{ code: number | null; ms: number }> {
  const at = Date.now();
  gw.proc.kill('SIGTERM');
  const code = await gw.exited();
  return { code, ms: Date.now() - at };
}

t.test('SIGTERM while the azure connect hangs in a black hole: the process exits 0 within the budget', async (t) => {
  const { proxy, start } = await azureGateway(t, newKey());
  proxy.blackhole();
  const gw = await start();
  await gw.waitFor(isReady, 'ready');
  const deadline = Date.now() + READY_WAIT_MS;
  while (proxy.connectionCount === 0 && Date.now() < deadline) await sleep(20);
  t.equal(proxy.connectionCount, 1, 'the SDK connect is under way into the black hole');
  const { code, ms } = await timedStop(gw);
  t.equal(code, 0, gw.output());
  t.ok(ms < STOP_BUDGET_MS, `exited ${ms} ms after SIGTERM (nothing kept the event loop alive after the stop)`);
});

t.test('SIGTERM on a busy black-holed link: exit 0 in budget, children served until the log closes', async (t) => {
  const key = newKey();
  const { iothub, proxy, start } = await azureGateway(t, key);
  const gw = await start();
  const ready = await gw.waitFor(isReady, 'ready');
  const child = await mqttChild(ready.hubPort as number, 'child-1', sasPassword('child-1', key));
  t.teardown(() => child.endAsync(true));
  t.equal(await publishAcked(child, 'before'), 'acknowledged');
  const deadline = Date.now() + READY_WAIT_MS;
  while (!iothub.telemetry.some((r) => r.body.toString() === 'before') && Date.now() < deadline) await sleep(20);
  t.ok(
    iothub.telemetry.some((r) => r.body.toString() === 'before'),
    'telemetry flows while the link is up',
  );

  proxy.blackhole();
  for (let i = 0; i < PUBLISHES_INTO_THE_HOLE; i += 1) {
    t.equal(await publishAcked(child, `hole-${i}`), 'acknowledged', `hole-${i}`);
  }
  const stopping = timedStop(gw);
  await gw.waitFor((l) => /SIGTERM, stopping/.test(String(l.msg)), 'the stop to begin');
  // The uplink is still waiting for its PUBACKs: the hub and the log still take a child's telemetry.
  t.equal(await publishAcked(child, 'during-stop'), 'acknowledged', 'a child publish during the uplink stop is acked');
  const { code, ms } = await stopping;
  t.equal(code, 0, gw.output());
  t.ok(ms < STOP_BUDGET_MS, `exited ${ms} ms after SIGTERM`);
  t.match(gw.output(), /outpost stopped/);

  // After a restart with the link back, everything acknowledged arrives, the in-flight ones included.
  proxy.pass();
  const again = await start();
  await again.waitFor(isReady, 'ready again');
  const want = ['before', 'during-stop', ...Array.from({ length: PUBLISHES_INTO_THE_HOLE }, (_, i) => `hole-${i}`)];
  const got = () => new Set(iothub.telemetry.map((r) => r.body.toString()));
  const until = Date.now() + READY_WAIT_MS;
  while (want.some((w) => !got().has(w)) && Date.now() < until) await sleep(50);
  t.same(
    want.filter((w) => !got().has(w)),
    [],
    'every acknowledged child message reached IoT Hub after the restart',
  );
  const second = await timedStop(again);
  t.equal(second.code, 0, again.output());
});
