import t, { type Test } from 'tap';
import mqtt from 'mqtt';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { SideChannelBroker } from '../../../firmware/side-channel.js';
import { slotVersion } from '../../../firmware/ota/slots.js';
import { UpdateSource } from '../../../firmware/ota/source.js';
import { updateStatusTopic, updateTopic } from '../../../firmware/side-channel.js';
import { Updater } from '../../../firmware/ota/updater.js';
import { RingLog } from '../../../firmware/store/log.js';
import { parseUplinkConfig } from '../../../firmware/uplink/config.js';
import { startUplink } from '../../../firmware/uplink/service.js';
import { ArtifactServer } from '../../support/artifact-server.js';
import { freePort, Mosquitto } from '../../support/brokers.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { buildRelease, signedManifest, signingKey, slotLayout, TEST_TARGET } from '../../support/ota-release.js';
import { createTestCa, type TestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/**
 * Manifests reach the updater from the cloud and the update's state goes back: the gateway twin's desired and
 * reported `outpostUpdate` at the IoT Hub emulator (driven by the real azure-iot-device SDK the uplink uses),
 * and retained `outpost/<gw>/update` and `.../update/status` at a real mosquitto. A hostile manifest is
 * refused with its reason reported; a good one is followed to the switch.
 */

const MiB = 1024 * 1024;
const LOG_OPTIONS = {
  segmentBytes: MiB,
  groupCommitBytesMax: MiB / 2,
  recordBytesMax: 64 * 1024,
  quotaBytes: 64 * MiB,
};
const key = signingKey();
let ca: TestCa;
let server: ArtifactServer;
let release: { bytes: number; sha256: string };

t.before(async () => {
  ca = await createTestCa();
  server = await ArtifactServer.start(await ca.issue('localhost', ['localhost']));
  const built = await buildRelease(tempDir(t), '1.1.0', MiB);
  release = built;
  server.setArtifact(await readFile(built.tarball));
});
t.teardown(async () => {
  await server.close();
  await ca.dispose();
});

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function gateway(t: Test, gatewayId: string, config: unknown, broker?: SideChannelBroker) {
  const dataDir = tempDir(t);
  const layout = await slotLayout(tempDir(t), dataDir, '1.0.0');
  const restarts: string[] = [];
  const updater = await Updater.open({
    dataDir,
    layout,
    running: { version: '1.0.0', target: TEST_TARGET },
    publicKeys: () => [key.publicKey],
    healthSecs: 30,
    budget: { downloadBytesMax: 64 * MiB, reservedBytes: () => 0 },
    bytesPerSecMax: () => 0,
    ca: ca.cert,
    restart: (why) => restarts.push(why),
    onError: () => {},
  });
  const source = new UpdateSource({ updater, gatewayId, broker, onError: () => {} });
  if (typeof config === 'object' && config !== null && 'caPem' in config) {
    await writeFile(path.join(dataDir, 'hub-ca.pem'), (config as { caPem: string }).caPem);
  }
  const { caPem: _caPem, ...section } = config as Record<string, unknown>;
  const log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  const uplinkConfig = parseUplinkConfig(section, path.join(dataDir, 'board.json'));
  const service = await startUplink({ config: uplinkConfig, gatewayId, log, dataDir, resyncHooks: [source.hook] });
  t.teardown(async () => {
    await service.stop();
    await source.stop();
    await updater.stop();
    await log.close();
  });
  return { updater, layout, restarts, service };
}

t.test('azure: the twin desired outpostUpdate reaches the updater; the state reaches the reported one', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const connectionString = hub.addDevice('gw-ota');
  // Already in the twin when the gateway connects: read by the GET at connect, and refused.
  const hostile = { version: '1.1.0', target: TEST_TARGET, url: 'https://x/y', bytes: -1 };
  hub.patchDesired('gw-ota', { outpostUpdate: hostile });
  const gw = await gateway(t, 'gw-ota', {
    protocol: 'azure',
    connectionString,
    caFile: 'hub-ca.pem',
    backoff: { baseMs: 50, maxMs: 500 },
    caPem: hub.ca.cert,
  });
  const reported = () => hub.twin('gw-ota').reported.outpostUpdate as Record<string, unknown> | undefined;
  await until('the refusal reported', () => reported()?.state === 'refused');
  const message = /sha256: must be 64 lowercase hex/;
  t.match(reported(), { state: 'refused', reason: 'malformed', running: '1.0.0', message });
  t.same(gw.updater.status().refusals, { malformed: 1 });

  hub.patchDesired('gw-ota', { outpostUpdate: signedManifest(key, '1.1.0', release, server.url()) });
  await until('the switch reported', () => reported()?.state === 'restarting');
  t.match(reported(), { state: 'restarting', version: '1.1.0', reason: null, message: null });
  // The state is reported as it is entered; the restart is asked for right after.
  await until('the restart request', () => gw.restarts.length > 0);
  t.same(gw.restarts, ['update to 1.1.0']);
  t.equal(await slotVersion(gw.layout, 'current'), '1.1.0');
});

t.test('mqtt: a retained manifest reaches the updater; the state is a retained status message', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const cloud = await mqtt.connectAsync(broker.url, { clientId: `test-cloud-${process.pid}` });
  t.teardown(() => cloud.endAsync());
  const statuses: Array<Record<string, unknown>> = [];
  cloud.on('message', (topic, payload) => {
    if (topic === updateStatusTopic('gw-m')) statuses.push(JSON.parse(payload.toString()) as Record<string, unknown>);
  });
  await cloud.subscribeAsync(updateStatusTopic('gw-m'), { qos: 1 });
  await cloud.publishAsync(updateTopic('gw-m'), '{"version": "1.1.0", "url": ', { qos: 1, retain: true });
  const gw = await gateway(t, 'gw-m', { protocol: 'mqtt', url: broker.url }, { url: broker.url });
  await until('the refusal published', () => statuses.at(-1)?.state === 'refused');
  t.match(statuses.at(-1), { state: 'refused', reason: 'malformed', message: /not JSON/ });

  const manifest = signedManifest(key, '1.1.0', release, server.url());
  await cloud.publishAsync(updateTopic('gw-m'), JSON.stringify(manifest), { qos: 1, retain: true });
  await until('the switch published', () => statuses.at(-1)?.state === 'restarting');
  t.ok(
    statuses.some((s) => s.state === 'downloading'),
    'downloading was published on the way',
  );
  // The state is reported as it is entered; the restart is asked for right after.
  await until('the restart request', () => gw.restarts.length > 0);
  t.same(gw.restarts, ['update to 1.1.0']);
  // Retained: a cloud service that subscribes later still reads the last state.
  const late = await mqtt.connectAsync(broker.url, { clientId: `test-late-${process.pid}` });
  t.teardown(() => late.endAsync());
  const retained = new Promise<Record<string, unknown>>((resolve) => {
    late.on('message', (_topic, payload) => resolve(JSON.parse(payload.toString()) as Record<string, unknown>));
  });
  await late.subscribeAsync(updateStatusTopic('gw-m'), { qos: 1 });
  t.match(await retained, { state: 'restarting', version: '1.1.0' });
});

t.test('a manifest channel that cannot be reached is reported and never holds back the uplink', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const nowhere = { url: `mqtt://127.0.0.1:${await freePort()}` };
  const gw = await gateway(t, 'gw-x', { protocol: 'mqtt', url: broker.url }, nowhere);
  await until('the link up after its resync hooks', () => gw.service.status().link === 'up');
  t.equal(gw.updater.status().state, 'idle');
});
