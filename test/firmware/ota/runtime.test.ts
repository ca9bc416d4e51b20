import t from 'tap';
import mqtt from 'mqtt';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadBoard } from '../../../firmware/board/board.js';
import { createLogger } from '../../../firmware/log/logger.js';
import { formatReport } from '../../../firmware/ops/format.js';
import { RecentErrors } from '../../../firmware/ops/report.js';
import { Ops } from '../../../firmware/ops/service.js';
import { requestStatus } from '../../../firmware/ops/status-socket.js';
import { updateTopic } from '../../../firmware/side-channel.js';
import { slotVersion } from '../../../firmware/ota/slots.js';
import { Runtime } from '../../../firmware/runtime.js';
import { ArtifactServer } from '../../support/artifact-server.js';
import { Mosquitto } from '../../support/brokers.js';
import { buildRelease, signedManifest, signingKey, slotLayout, TEST_TARGET } from '../../support/ota-release.js';
import { createTestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/**
 * The runtime as main.ts builds it for an installed release: a manifest retained at the uplink's broker is
 * refused or followed to the switch and the restart request, and the update's state is in `outpost status`
 * (readable and --json over the socket) and in the metrics.
 */

const BOARD = fileURLToPath(new URL('../../../board.json', import.meta.url));
const MiB = 1024 * 1024;

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

t.test('a retained manifest through the runtime: refused, then switched; state in status and metrics', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const ca = await createTestCa();
  t.teardown(() => ca.dispose());
  const server = await ArtifactServer.start(await ca.issue('localhost', ['localhost']));
  t.teardown(() => server.close());
  const release = await buildRelease(tempDir(t), '1.1.0', MiB);
  server.setArtifact(readFileSync(release.tarball));
  const key = signingKey();
  const keysDir = tempDir(t);
  writeFileSync(join(keysDir, 'ota.pem'), key.publicKey.export({ type: 'spki', format: 'pem' }));
  const caFile = join(tempDir(t), 'artifact-ca.pem');
  writeFileSync(caFile, ca.cert);
  process.env.OUTPOST_OTA_KEYS_DIR = keysDir;
  t.teardown(() => void delete process.env.OUTPOST_OTA_KEYS_DIR);

  const dataDir = tempDir(t);
  const layout = await slotLayout(tempDir(t), dataDir, '1.0.0');
  mkdirSync(join(layout.releasesDir, '1.0.0'), { recursive: true });
  const board = {
    ...(await loadBoard(BOARD)),
    metrics: { port: 0 },
    uplink: { protocol: 'mqtt', url: broker.url },
    ota: { updateHealthSecs: 30, downloadBytesMax: 64 * MiB, caFile },
  };
  const restarts: string[] = [];
  const errors = new RecentErrors();
  const runtime = new Runtime(board, {
    dataDir,
    hubPort: 0,
    onError: (source, err) => errors.add(source, err),
    release: { version: '1.0.0', target: TEST_TARGET, bundleDir: join(layout.releasesDir, '1.0.0') },
    requestRestart: (reason) => restarts.push(reason),
  });
  const cloud = await mqtt.connectAsync(broker.url, { clientId: `test-cloud-${process.pid}` });
  t.teardown(() => cloud.endAsync());
  await cloud.publishAsync(updateTopic('outpost-sim'), JSON.stringify({ version: '1.1.0' }), { qos: 1, retain: true });
  await runtime.start();
  const ops = await Ops.start({
    runtime,
    logger: createLogger({ destination: { write() {} } }),
    errors,
    env: { RUNTIME_DIRECTORY: tempDir(t) },
  });
  t.teardown(async () => {
    await ops.stopping();
    await runtime.stop();
    await ops.close();
  });

  await until('the refusal', () => runtime.status().update?.state === 'refused');
  const report = await requestStatus(ops.socketPath!);
  t.match(report.update, { state: 'refused', reason: 'malformed', running: '1.0.0', refusals: { malformed: 1 } });
  const line = /^update: {4}refused \(malformed\): .*target.*, running 1\.0\.0; refused since start: malformed 1$/m;
  t.match(formatReport(report), line);
  const metrics = await (await fetch(`http://127.0.0.1:${ops.metricsPort}/metrics`)).text();
  t.match(metrics, /^outpost_update_state\{state="refused",version="",running="1.0.0"\} 1$/m);
  t.match(metrics, /^outpost_update_refusals_total\{reason="malformed"\} 1$/m);

  const manifest = signedManifest(key, '1.1.0', release, server.url());
  await cloud.publishAsync(updateTopic('outpost-sim'), JSON.stringify(manifest), { qos: 1, retain: true });
  await until('the restart request', () => restarts.length > 0).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(runtime.status().update)} ${JSON.stringify(errors.list())}`);
  });
  t.same(restarts, ['update to 1.1.0']);
  t.equal(await slotVersion(layout, 'current'), '1.1.0');
  t.match(formatReport(await requestStatus(ops.socketPath!)), /^update: {4}restarting 1\.1\.0, running 1\.0\.0/m);
});
