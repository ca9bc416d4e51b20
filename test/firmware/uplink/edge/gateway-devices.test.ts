import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import azureDevice from 'azure-iot-device';
import { DEAD_LETTER_KEY, DEAD_LETTER_LANE_NAME } from '../../../../firmware/uplink/dead-letter.js';
import { IDENTITY_REFUSED } from '../../../../firmware/uplink/edge/lane-cursor.js';
import { RECORD_KEY } from '../../../../firmware/uplink/message.js';
import { edgeGateway } from '../../../support/edge-gateway.js';
import { until } from '../../../support/hub-fixture.js';
import type { IotHubEmulator } from '../../../support/iothub-emulator.js';

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
