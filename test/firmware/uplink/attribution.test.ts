import t from 'tap';
import { createTransport } from '../../../firmware/uplink/transports.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { RECORD_KEY, recordToMessage } from '../../../firmware/uplink/message.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { until } from '../../support/until.js';

/**
 * Issue 18's device-mode finding: a stored record's own properties named like the gateway's attribution
 * (`outpost-device-id`, `iothub-creation-time-utc`, any `outpost-*` / `iothub-*`, in any case) must not reach
 * the cloud beside or before the gateway's: the upstream message carries the gateway's value once.
 */

const FORGED = {
  'outpost-device-id': 'someone-else',
  'iothub-creation-time-utc': '2000-01-01T00:00:00.000Z',
  'Outpost-Device-Id': 'someone-else',
  'IOTHUB-CREATION-TIME-UTC': '2000-01-01T00:00:00.000Z',
  'outpost-msg-id': 'forged',
  'iothub-connection-device-id': 'someone-else',
};

t.test('a record cannot forge outpost-device-id or iothub-creation-time-utc at IoT Hub', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const transport = createTransport({ protocol: 'azure', connectionString: hub.addDevice('gw'), ca: hub.ca.cert });
  const lane = new MemoryLane('telemetry');
  const pump = new Pump({ gatewayId: 'gw', transport, lanes: [{ lane }], backoff: { baseMs: 50, maxMs: 300 } });
  pump.start();
  t.teardown(() => pump.stop());
  const before = Date.now();
  const properties = { [RECORD_KEY.deviceId]: 'child-a', ...FORGED, kept: 'yes' };
  await lane.append({ body: Buffer.from('x'), properties });
  await until('the message at IoT Hub', () => hub.telemetry.length === 1);
  const bag = hub.telemetry[0]!.propertyBag;
  const named = (name: string) => bag.filter(([key]) => key.toLowerCase() === name);
  t.same(named('outpost-device-id'), [['outpost-device-id', 'child-a']], 'the true child, once');
  const created = named('iothub-creation-time-utc');
  t.equal(created.length, 1, 'one creation time');
  t.ok(Date.parse(created[0]![1]) >= before - 1_000, `the enqueue time, not the forged one (${created[0]![1]})`);
  t.same(named('outpost-msg-id'), [], 'no outpost-* name of the record goes up');
  t.same(named('iothub-connection-device-id'), [], 'nor iothub-*');
  t.same(named('kept'), [['kept', 'yes']], "the record's other properties go up");
  t.equal(hub.telemetry[0]!.systemProperties['iothub-connection-device-id'], 'gw', 'IoT Hub stamps the connection');
});

t.test('the upstream message of every transport leaves reserved names out', async (t) => {
  const message = recordToMessage('gw', 'telemetry', {
    seq: 7,
    enqueuedAtMs: 1_000,
    expiresAtStoreMs: 0,
    body: Buffer.alloc(0),
    properties: { [RECORD_KEY.deviceId]: 'child-a', ...FORGED, kept: 'yes' },
  });
  t.same(message.properties, { kept: 'yes' });
  t.equal(message.deviceId, 'child-a');
});
