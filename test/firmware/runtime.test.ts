import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadBoard } from '../../firmware/board/board.js';
import { RECORD_KEY } from '../../firmware/uplink/message.js';
import { RingLog } from '../../firmware/store/log.js';
import { Runtime } from '../../firmware/runtime.js';
import { formatStatus } from '../../firmware/ops/status-line.js';
import { UPSTREAM_LANE } from '../../firmware/store/names.js';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { IdentityCache } from '../../firmware/auth/cache.js';
import { parseScopeDocument } from '../../firmware/auth/identity.js';
import { publishScope } from '../../firmware/ops/scope-cli.js';
import { Mosquitto } from '../support/brokers.js';
import { bundleForChild } from '../support/bundle.js';
import { mqttChild, newKey, sasPassword, scopeDocument, until } from '../support/hub-fixture.js';
import { tempDir } from '../support/tmp.js';

const BOARD = fileURLToPath(new URL('../../board.json', import.meta.url));
/** How long the sim board gets to produce readings, ms (bounded: the loop ends by itself). */
const READINGS_WAIT_MS_MAX = 15_000;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** A board.json of its own (with boards/ beside it), so a test can give it an uplink. */
function boardFile(t: Parameters<typeof tempDir>[0], board: Record<string, unknown>): string {
  const dir = tempDir(t);
  cpSync(join(ROOT, 'boards'), join(dir, 'boards'), { recursive: true });
  writeFileSync(join(dir, 'board.json'), JSON.stringify(board));
  return join(dir, 'board.json');
}

t.test('the sim board runs the pipeline: device readings land durably in the upstream lane', async (t) => {
  const dataDir = tempDir(t);
  const runtime = new Runtime(await loadBoard(BOARD), { dataDir, hubPort: 0 });
  await runtime.start();
  const started = Date.now();
  while (runtime.status().store.lanes[0]!.lastSeq < 5 && Date.now() - started < READINGS_WAIT_MS_MAX) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const line = formatStatus(runtime.status());
  t.match(
    line,
    /outpost outpost-sim \[sim\] link=disabled backlog=\d+ rec/,
    'status line names gateway, board and backlog',
  );
  t.match(line, /env:temperatureC=/, 'status line shows a reading');
  await runtime.stop();

  const log = await RingLog.open({ dir: dataDir });
  const records = await (await log.lane(UPSTREAM_LANE)).read(1, { recordsMax: 100 });
  t.ok(records.length >= 5, `${records.length} readings stored`);
  const devices = new Set(records.map((r) => r.properties[RECORD_KEY.deviceId]));
  t.ok(devices.has('env'), `readings attributed to their devices (${[...devices].join(', ')})`);
  const env = records.find((r) => r.properties[RECORD_KEY.deviceId] === 'env')!;
  t.equal(env.properties[RECORD_KEY.contentType], 'application/json');
  t.type(JSON.parse(env.body.toString()).temperatureC, 'number');
  await log.close();
});

t.test('the bundled gateway starts, reports ready, and stops cleanly on SIGTERM', async (t) => {
  const dataDir = tempDir(t);
  const entry = await bundleForChild(fileURLToPath(new URL('../../firmware/main.ts', import.meta.url)), tempDir(t));
  const proc = spawn(process.execPath, [entry, 'run', '--board', BOARD], {
    env: { ...process.env, OUTPOST_DATA_DIR: dataDir, OUTPOST_HUB_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let signalled = false;
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('outpost ready') && !signalled) {
      signalled = true;
      proc.kill('SIGTERM');
    }
  });
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  t.equal(code, 0, out);
  t.match(out, /outpost ready: board sim/);
  t.match(out, /SIGTERM, stopping[\s\S]*outpost stopped/);
});

t.test('mqtt uplink: the first connection runs the identity hook: a device revoked while off is refused', async (t) => {
  const dataDir = tempDir(t);
  const key = newKey();
  const cache = await IdentityCache.open(dataDir);
  const scope = scopeDocument('gw-rt', 1, [{ deviceId: 'child-r', key }]);
  await cache.applyScope(parseScopeDocument(scope, 'gw-rt'), Date.now());
  cache.close();
  const mosquitto = await Mosquitto.start({ persistence: false });
  t.teardown(() => mosquitto.stop());
  // Revoked in the cloud while the gateway was off.
  const revoked = scopeDocument('gw-rt', 2, [{ deviceId: 'child-r', key, status: 'disabled' }]);
  await publishScope({ url: mosquitto.url }, 'gw-rt', revoked);
  const uplink = { protocol: 'mqtt', url: mosquitto.url };
  const board = boardFile(t, { board: 'sim', identity: { gatewayId: 'gw-rt' }, uplink });
  const runtime = new Runtime(await loadBoard(board), { dataDir, hubPort: 0 });
  await runtime.start();
  t.teardown(() => runtime.stop());
  await until('the first connection to finish its resync', () => runtime.status().link === 'up');
  t.equal(runtime.status().uplink?.connects, 1, 'still the first connection');
  await until('the retained scope to be applied', () => runtime.status().hub?.identities.scopeVersion === 2);
  const port = runtime.status().hub!.ports.tcp!;
  await t.rejects(mqttChild(port, 'child-r', sasPassword('child-r', key)), 'the revoked child is refused');
});
