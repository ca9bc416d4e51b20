import t, { type Test } from 'tap';
import mqtt from 'mqtt';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { RingLog } from '../../../firmware/store/log.js';
import { parseUplinkConfig } from '../../../firmware/uplink/config.js';
import { startUplink, type UplinkService } from '../../../firmware/uplink/service.js';
import { SETTINGS_FILE_NAME } from '../../../firmware/uplink/settings-file.js';
import { Mosquitto, freePort } from '../../support/brokers.js';
import { Subscriber } from '../../support/delivery.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

/**
 * Cloud-pushed settings through the whole service: a retained config document at a real mosquitto (and
 * desired properties at the IoT Hub emulator) reach the ring log and the pump live, survive a restart
 * from the data dir, and bad documents are refused with a reason and counted.
 */

const MiB = 1024 * 1024;
/** Small segments, so a quota of a few MiB is valid (the store wants at least four segments). */
const LOG_OPTIONS = {
  segmentBytes: MiB,
  groupCommitBytesMax: MiB / 2,
  recordBytesMax: 64 * 1024,
  quotaBytes: 64 * MiB,
  ttlSecs: 7_200,
};
const BODY_BYTES = 1_000;

async function publishRetained(url: string, topic: string, payload: string): Promise<void> {
  const client = await mqtt.connectAsync(url, { clientId: `test-cloud-${process.pid}` });
  await client.publishAsync(topic, payload, { qos: 1, retain: true });
  await client.endAsync();
}

/** Bad config documents at `topic`, each refused with its reason and counted, in order. */
async function badDocumentsRefused(t: Test, service: UplinkService, url: string, topic: string): Promise<void> {
  const bad: Array<[string, RegExp]> = [
    [JSON.stringify({ ttlSecs: -5 }), /"ttlSecs" must be an integer from 1 to 31536000 s, got -5/],
    ['{"ttlSecs": ', /not JSON/],
    [JSON.stringify({ ttlSecs: 60, colour: 'red' }), /unknown setting "colour"/],
    [JSON.stringify({ quotaBytes: 2 * MiB }), /"quotaBytes" must be an integer between 4194304/],
    [JSON.stringify([1]), /expected a JSON object/],
  ];
  for (const [index, [payload, reason]] of bad.entries()) {
    await publishRetained(url, topic, payload);
    await until(`refusal ${index + 1}`, () => service.status().settings?.refused === index + 1);
    t.match(service.status().settings?.lastRefusal, { reason, source: `mqtt:${topic}` }, `refused: ${payload}`);
  }
}

t.test('mqtt: a retained config applies live, persists, survives a restart; bad ones are refused', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-set/+/telemetry');
  t.teardown(() => sub.close());
  const dataDir = tempDir(t);
  const board = path.join(dataDir, 'board.json');
  const topic = 'outpost/gw-set/config';
  await publishRetained(
    broker.url,
    topic,
    JSON.stringify({ ttlSecs: 600, quotaBytes: 8 * MiB, bytesPerSecMax: 4_000 }),
  );

  let log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  t.teardown(() => log.close());
  const errors: Error[] = [];
  const config = parseUplinkConfig({ protocol: 'mqtt', url: broker.url }, board);
  let service: UplinkService = await startUplink({
    config,
    gatewayId: 'gw-set',
    log,
    dataDir,
    onError: (e) => errors.push(e),
  });
  t.teardown(() => service.stop());
  await until('the retained config', () => service.status().settings?.effective.ttlSecs === 600);
  t.equal(log.opts.ttlSecs, 600, 'TTL applied to the ring log');
  t.equal(log.stats().quotaBytes, 8 * MiB, 'quota applied');
  t.equal(service.status().bytesPerSecMax, 4_000, 'bandwidth cap applied to the pump');
  t.equal(service.status().settings?.source, `mqtt:${topic}`);

  // 10 KB against a 4,000 B/s cap (one second of burst): the last body cannot arrive before ~1.5 s.
  // Timed from before the first append: the drain starts with it, and on a loaded machine the ten durable
  // appends alone can take most of the 1.5 s (timed after them, the check once saw 360 ms and failed).
  const lane = await log.lane('upstream');
  const started = Date.now();
  for (let i = 1; i <= 10; i += 1) await lane.append({ body: Buffer.from(String(i).padEnd(BODY_BYTES)) });
  await until('the capped drain', () => sub.values.length >= 10);
  t.ok(Date.now() - started >= 1_000, `10 × ${BODY_BYTES} B took ${Date.now() - started} ms under the cap`);

  await publishRetained(broker.url, topic, JSON.stringify({ ttlSecs: 900 }));
  await until('the new document', () => service.status().settings?.effective.ttlSecs === 900);
  t.equal(log.stats().quotaBytes, 64 * MiB, 'a key the document leaves out falls back to the board');
  t.equal(service.status().bytesPerSecMax, 0);

  await badDocumentsRefused(t, service, broker.url, topic);
  t.equal(log.opts.ttlSecs, 900, 'refused documents changed nothing');
  t.ok(
    errors.some((e) => /cloud settings from mqtt:outpost\/gw-set\/config refused/.test(e.message)),
    'refusals reach onError',
  );

  await service.stop();
  const saved = JSON.parse(await readFile(path.join(dataDir, SETTINGS_FILE_NAME), 'utf8'));
  t.match(saved, { format: 1, overrides: { ttlSecs: 900 }, source: `mqtt:${topic}` }, 'persisted in the data dir');

  // Restart with the cloud unreachable: the saved settings hold before any connect.
  await log.close();
  log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  const offline = parseUplinkConfig({ protocol: 'mqtt', url: `mqtt://127.0.0.1:${await freePort()}` }, board);
  service = await startUplink({ config: offline, gatewayId: 'gw-set', log, dataDir });
  t.equal(log.opts.ttlSecs, 900, 'TTL restored from the data dir at start');
  t.match(service.status().settings, { source: `saved:mqtt:${topic}`, overrides: { ttlSecs: 900 } });
});

t.test('a corrupt settings file is reported and the board values hold', async (t) => {
  const dataDir = tempDir(t);
  await writeFile(path.join(dataDir, SETTINGS_FILE_NAME), '{"format":1,');
  const log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  t.teardown(() => log.close());
  const errors: Error[] = [];
  const config = parseUplinkConfig(
    { protocol: 'mqtt', url: `mqtt://127.0.0.1:${await freePort()}` },
    path.join(dataDir, 'board.json'),
  );
  const service = await startUplink({ config, gatewayId: 'gw-c', log, dataDir, onError: (e) => errors.push(e) });
  t.teardown(() => service.stop());
  t.match(errors[0]?.message, /uplink-settings\.json: saved cloud settings are not JSON/);
  t.equal(log.opts.ttlSecs, 7_200);
});

t.test('protocol "none": status says disabled and nothing else happens', async (t) => {
  const dataDir = tempDir(t);
  const log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  t.teardown(() => log.close());
  const lane = await log.lane('upstream');
  await lane.append({ body: Buffer.from('x') });
  const service = await startUplink({
    config: parseUplinkConfig(undefined, 'board.json'),
    gatewayId: 'gw-n',
    log,
    dataDir,
  });
  t.match(service.status(), {
    link: 'disabled',
    protocol: 'none',
    backlog: { records: 1, bytes: Number },
    settings: null,
  });
  service.wake('test');
  service.addResyncHook({ name: 'never', run: async () => void t.fail('a disabled uplink runs no hooks') });
  await service.stop();
  await t.rejects(readFile(path.join(dataDir, SETTINGS_FILE_NAME)), { code: 'ENOENT' }, 'no settings file');
});

t.test('azure: desired properties at connect (GET) and as patches; null restores the board value', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const dataDir = tempDir(t);
  await writeFile(path.join(dataDir, 'hub-ca.pem'), hub.ca.cert);
  hub.addDevice('gw-tw');
  hub.patchDesired('gw-tw', { ttlSecs: 1_200, thermostat: { setpoint: 21 } });
  const log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  t.teardown(() => log.close());
  const config = parseUplinkConfig(
    {
      protocol: 'azure',
      connectionString: hub.addDevice('gw-tw'),
      caFile: 'hub-ca.pem',
      backoff: { baseMs: 50, maxMs: 500 },
    },
    path.join(dataDir, 'board.json'),
  );
  const order: string[] = [];
  const service = await startUplink({ config, gatewayId: 'gw-tw', log, dataDir });
  t.teardown(() => service.stop());
  service.addResyncHook({ name: 'twin', run: async () => void order.push(`twin after ttl ${log.opts.ttlSecs}`) });
  await until('the first resync', () => order.length === 1);
  t.same(order, ['twin after ttl 1200'], 'the settings hook (twin GET) runs first, then hooks added later');
  hub.patchDesired('gw-tw', { bytesPerSecMax: 5_000 });
  await until('the patch', () => service.status().bytesPerSecMax === 5_000);
  t.equal(log.opts.ttlSecs, 1_200, 'a patch leaves the keys it does not name');
  hub.patchDesired('gw-tw', { ttlSecs: null, bytesPerSecMax: -1 });
  await until('a refusal', () => service.status().settings?.refused === 1);
  hub.patchDesired('gw-tw', { ttlSecs: null });
  await until('null restores the board value', () => log.opts.ttlSecs === 7_200);
  t.same(service.status().settings?.overrides, { bytesPerSecMax: 5_000 });
  hub.disconnect('gw-tw');
  await until('a reconnect', () => order.length === 2);
  t.equal(order[1], 'twin after ttl 7200', 'and again on every reconnect');
});
