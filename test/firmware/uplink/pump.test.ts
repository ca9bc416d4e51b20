import t from 'tap';
import { AedesBroker, Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';

/** The pump against real brokers, with the store's in-memory test double. */

async function fill(lane: MemoryLane, from: number, to: number, deviceId?: string): Promise<void> {
  for (let i = from; i <= to; i += 1) {
    await lane.append({ body: Buffer.from(String(i)), properties: deviceId ? { [RECORD_KEY.deviceId]: deviceId } : {} });
  }
}

t.test('drains a backlog in order to aedes (MQTT 3.1.1)', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-1/+/telemetry');
  t.teardown(() => sub.close());
  const lane = new MemoryLane('telemetry');
  await fill(lane, 1, 2_000);
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-1', protocolVersion: 4 });
  const pump = new Pump({ gatewayId: 'gw-1', transport, lanes: [{ lane }] });
  pump.start();
  t.teardown(() => pump.stop());
  await fill(lane, 2_001, 2_500);
  t.ok(await sub.waitForDistinct(2_500, 20_000), 'all arrived');
  t.same(checkDelivery(sub.values, 2_500, 100).problems, []);
  t.equal(sub.values.length, 2_500, 'no duplicates without an outage');
  await pump.stop();
  t.equal(lane.ackedSeq(), 2_500, 'the store cursor reached the end');
  t.ok(lane.ackCalls.length < 2_500 / 10, `acked in batches (${lane.ackCalls.length} ack calls)`);
  t.equal(pump.status().link, 'stopped');
});

t.test('MQTT 5 to mosquitto carries the stable id, enqueue time and device id', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-2/#', { protocolVersion: 5 });
  t.teardown(() => sub.close());
  const lane = new MemoryLane('telemetry', { wallMs: () => Date.UTC(2026, 0, 2, 3, 4, 5) });
  await lane.append({
    body: Buffer.from('1'),
    properties: { [RECORD_KEY.deviceId]: 'child-7', [RECORD_KEY.contentType]: 'application/json', room: 'boiler' },
  });
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-2' });
  const pump = new Pump({ gatewayId: 'gw-2', transport, lanes: [{ lane }] });
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(1, 10_000));
  const packet = sub.packets[0]!;
  t.equal(packet.topic, 'outpost/gw-2/child-7/telemetry');
  t.same(packet.properties?.userProperties, {
    room: 'boiler',
    'outpost-msg-id': 'gw-2:telemetry:1',
    'outpost-enqueued-at': '2026-01-02T03:04:05.000Z',
    'outpost-device-id': 'child-7',
  });
  t.equal(packet.properties?.contentType, 'application/json');
});
