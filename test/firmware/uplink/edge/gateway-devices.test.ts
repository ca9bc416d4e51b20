import path from 'node:path';
import { collectWarnings } from '../../../support/warnings.js';
import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import azureDevice from 'azure-iot-device';
import { loadBoard } from '../../../../firmware/board/board.js';
import { CLOUD_IDENTITY_UNUSED_WARNING } from '../../../../firmware/gateway-devices.js';
import { Runtime } from '../../../../firmware/runtime.js';
import { RingLog } from '../../../../firmware/store/log.js';
import { UPSTREAM_LANE } from '../../../../firmware/store/names.js';
import { DEAD_LETTER_KEY, DEAD_LETTER_LANE_NAME, DeadLetters } from '../../../../firmware/uplink/dead-letter.js';
import { HELD_KEY, HELD_LANE_NAME } from '../../../../firmware/uplink/edge/held.js';
import { IDENTITY_REFUSED } from '../../../../firmware/uplink/edge/lane-cursor.js';
import { RECORD_KEY } from '../../../../firmware/uplink/message.js';
import { edgeGateway, writeEdgeBoard } from '../../../support/edge-gateway.js';
import { hubCerts, until } from '../../../support/hub-fixture.js';
import { IotHubEmulator } from '../../../support/iothub-emulator.js';
import { tempDir } from '../../../support/tmp.js';

/**
 * Edge mode (issue 18), the whole runtime on the sim board against the IoT Hub emulator: the gateway's own
 * drivers are no IoT Hub identities, so their readings go up on the gateway's own device connection, named
 * in `outpost-device-id` as in device mode, while a child's telemetry still goes up as the child.
 */

/** Long enough for an identity refused three times (backoff 50..500 ms) to be dead-lettered. */
const REFUSAL_WINDOW_MS = 3_000;

t.test("the gateway's driver readings arrive as the gateway, none dead-lettered; a child's as itself", async (t) => {
  const gw = await edgeGateway(t, ['child-1']);
  const { cloud, runtime } = gw;
  const drivers = runtime
    .status()
    .devices.filter((d) => d.state !== 'disabled')
    .map((d) => d.id);
  t.ok(drivers.length >= 2, `the sim board runs its drivers (${drivers.join(', ')})`);
  const fromDriver = () => cloud.telemetryOf('gw').filter((r) => drivers.includes(r.properties['outpost-device-id']!));
  await until('driver readings in IoT Hub as the gateway', () => fromDriver().length >= 2, 15_000);
  const child = await gw.child('child-1');
  await child.open();
  await child.sendEvent(new azureDevice.Message('from the child'));
  await until("the child's telemetry as the child", () => cloud.telemetryOf('child-1').length === 1);
  await sleep(REFUSAL_WINDOW_MS);
  for (const record of fromDriver()) {
    t.equal(record.systemProperties['iothub-connection-device-id'], 'gw', 'authenticated as the gateway');
    t.equal(record.actorDeviceId, undefined, "on the gateway's own connection, not on behalf of another");
  }
  const [childRecord] = cloud.telemetryOf('child-1');
  t.equal(childRecord!.systemProperties['iothub-connection-device-id'], 'child-1');
  t.equal(childRecord!.body.toString(), 'from the child');
  for (const id of drivers) t.equal(cloud.operations(id, 'connect'), 0, `no connection made as driver "${id}"`);
  const uplink = runtime.status().uplink!;
  t.same(uplink.deadLetters, { total: 0, byReason: {}, last: null }, 'nothing dead-lettered');
  t.same(uplink.edge!.refused, [], 'no identity refused');
  t.equal(uplink.edge!.connectsRefused, 0, 'no connect refused');
});

/** Fast polling for the drivers a test watches (the sim board polls every 10-30 s). */
const POLL_FAST_MS = 300;

t.test(
  'a driver with cloudIdentity "own" goes up as itself on behalf of the gateway; the others as the gateway',
  async (t) => {
    const registered = (cloud: IotHubEmulator) => {
      cloud.createDevice('env');
      cloud.addChild('gw', 'env');
    };
    const devices = {
      env: { pollIntervalMs: POLL_FAST_MS, cloudIdentity: 'own' },
      climate: { pollIntervalMs: POLL_FAST_MS, cloudIdentity: 'own' },
      adc: { pollIntervalMs: POLL_FAST_MS },
    };
    const { cloud, runtime } = await edgeGateway(t, [], {}, registered, { devices });
    const fromGateway = (id: string) => cloud.telemetryOf('gw').filter((r) => r.properties['outpost-device-id'] === id);
    await until('"env" readings in IoT Hub as "env"', () => cloud.telemetryOf('env').length >= 2, 15_000);
    await until('"adc" readings in IoT Hub as the gateway', () => fromGateway('adc').length >= 2, 15_000);
    await until(
      '"climate" dead-lettered as identity-refused',
      () => (runtime.status().uplink!.deadLetters.byReason[IDENTITY_REFUSED] ?? 0) >= 2,
      15_000,
    );
    for (const record of cloud.telemetryOf('env')) {
      t.equal(record.systemProperties['iothub-connection-device-id'], 'env', 'authenticated as the driver');
      t.equal(record.actorDeviceId, 'gw', "on behalf of it, by the gateway's $edgeHub");
      t.equal(record.properties['outpost-device-id'], 'env');
    }
    for (const record of fromGateway('adc')) {
      t.equal(record.systemProperties['iothub-connection-device-id'], 'gw', 'a default driver as the gateway');
      t.equal(record.actorDeviceId, undefined, "on the gateway's own connection");
    }
    t.same(fromGateway('env'), [], '"env" never as the gateway');
    t.same(cloud.telemetryOf('climate'), [], 'nothing from the unregistered driver reached IoT Hub');
    const uplink = runtime.status().uplink!;
    t.same(uplink.edge!.refused, ['climate'], 'only the unregistered driver refused');
    const letters = await (await runtime.store.lane(DEAD_LETTER_LANE_NAME)).read(1, { recordsMax: 1000 });
    t.ok(letters.length >= 2, `its readings kept in the dead-letter lane (${letters.length})`);
    for (const letter of letters) {
      t.equal(letter.properties[RECORD_KEY.deviceId], 'climate', 'a letter of "climate"');
      t.equal(letter.properties[DEAD_LETTER_KEY.reason], IDENTITY_REFUSED);
    }
  },
);

/** The old driver readings a test stores: LETTERS dead-lettered, then one parked in the holding lane, one unsent. */
const LETTERS = 3;
const OLD_RECORDS = LETTERS + 2;

/**
 * What an older version left in the data directory: driver "env"'s readings without the $gatewayDevice mark,
 * sent as "env", which IoT Hub refused (not a child), so dead-lettered as identity-refused under "env"; one
 * parked in the holding lane while "env" was in backoff; one still in the upstream lane.
 */
async function oldDriverBacklog(dataDir: string): Promise<void> {
  const log = await RingLog.open({ dir: dataDir });
  try {
    const upstream = await log.lane(UPSTREAM_LANE);
    const dead = new DeadLetters(await log.lane(DEAD_LETTER_LANE_NAME), () => Date.now());
    for (let n = 1; n <= OLD_RECORDS; n++) {
      const properties = { [RECORD_KEY.deviceId]: 'env', [RECORD_KEY.contentType]: 'application/json' };
      await upstream.append({ body: Buffer.from(`{"old":${n}}`), properties });
    }
    const records = await upstream.read(1, { recordsMax: OLD_RECORDS });
    for (const record of records.slice(0, LETTERS)) await dead.put(UPSTREAM_LANE, record, IDENTITY_REFUSED, 0);
    // The holding lane's copy keeps the original's lane and seq (held.ts).
    const parked = records[LETTERS]!;
    const origin = { [HELD_KEY.lane]: UPSTREAM_LANE, [HELD_KEY.seq]: String(parked.seq) };
    await (
      await log.lane(HELD_LANE_NAME)
    ).append({ body: parked.body, properties: { ...parked.properties, ...origin } });
    upstream.ack(LETTERS + 1);
  } finally {
    await log.close();
  }
}

t.test("a driver's old identity-refused letters and unmarked records go up as the gateway, once", async (t) => {
  const { cloud, runtime } = await edgeGateway(t, [], {}, (_cloud, dataDir) => oldDriverBacklog(dataDir));
  const ids = Array.from({ length: OLD_RECORDS }, (_, i) => `gw:upstream:${i + 1}`);
  const old = () => cloud.telemetryOf('gw').filter((r) => ids.includes(r.properties['$.mid']!));
  await until('the old readings in IoT Hub', () => old().length >= ids.length, 15_000);
  const held = await runtime.store.lane(HELD_LANE_NAME);
  await until('the holding lane drained', () => held.ackedSeq() === held.lastDurableSeq());
  const mids = old().map((r) => r.properties['$.mid']!);
  t.same([...mids].sort(), ids, 'each once, with its original message id');
  t.same(
    mids.filter((mid) => ids.slice(0, LETTERS).includes(mid)),
    ids.slice(0, LETTERS),
    'the letters in stored order',
  );
  t.ok(held.lastDurableSeq() > 1, 'the letters went through the holding lane, after the parked copy');
  for (const record of old()) {
    const mid = record.properties['$.mid']!;
    t.equal(record.systemProperties['iothub-connection-device-id'], 'gw', `${mid} authenticated as the gateway`);
    t.equal(record.actorDeviceId, undefined, "on the gateway's own connection");
    t.equal(record.properties['outpost-device-id'], 'env', 'named as the driver');
    t.equal(record.body.toString(), `{"old":${mid.split(':')[2]}}`, 'its own body');
  }
  const uplink = runtime.status().uplink!;
  t.same(uplink.edge!.deadLetters, { resent: LETTERS, expired: 0, waiting: 0 }, 'counted as re-sent');
  t.equal(uplink.deadLetters.total, 0, 'nothing dead-lettered again');
  t.equal(cloud.operations('env', 'connect'), 0, 'no connection tried as "env"');
});

t.test('device mode: a driver set "own" still goes as the gateway, and the start warns', async (t) => {
  const warnings: Error[] = [];
  collectWarnings(warnings, t);
  const dir = tempDir(t, 'outpost-device-mode-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const cloud = await IotHubEmulator.start();
  t.teardown(() => cloud.stop());
  const connections = cloud.createEdgeDevice('gw');
  cloud.createDevice('env');
  cloud.addChild('gw', 'env');
  // The edge board without its azure section (the $edgeHub file): device mode.
  const devices = { env: { pollIntervalMs: POLL_FAST_MS, cloudIdentity: 'own' } };
  writeEdgeBoard(dir, certs, cloud, connections, { azure: { mode: 'device' } }, { devices });
  const runtime = new Runtime(await loadBoard(path.join(dir, 'board.json'), { files: true }), {
    dataDir: path.join(dir, 'data'),
  });
  await runtime.start();
  t.teardown(() => runtime.stop());
  const fromEnv = () => cloud.telemetryOf('gw').filter((r) => r.properties['outpost-device-id'] === 'env');
  await until('"env" readings in IoT Hub as the gateway', () => fromEnv().length >= 2, 15_000);
  t.same(cloud.telemetryOf('env'), [], 'none as "env"');
  t.equal(cloud.operations('env', 'connect'), 0, 'no connection as "env"');
  const unused = warnings.filter((w) => (w as NodeJS.ErrnoException).code === CLOUD_IDENTITY_UNUSED_WARNING);
  t.equal(unused.length, 1, 'one warning');
  t.match(unused[0]?.message, /board\.json: \$\.devices\.env\.cloudIdentity: "own" applies in edge mode only/);
});
