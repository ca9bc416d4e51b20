import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import azureDevice from 'azure-iot-device';
import { edgeGateway } from '../../../support/edge-gateway.js';
import { until } from '../../../support/hub-fixture.js';

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
