import t from 'tap';
import { AedesBroker, Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { until } from '../../support/until.js';

/** The pump against real brokers, with the store's in-memory test double. */

async function fill(lane: MemoryLane, from: number, to: number, deviceId?: string): Promise<void> {
  for (let i = from; i <= to; i += 1) {
    const properties: Record<string, string> = deviceId ? { [RECORD_KEY.deviceId]: deviceId } : {};
    await lane.append({ body: Buffer.from(String(i)), properties });
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

t.test('priority lanes drain by weight and the lowest is never starved', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-3/+/telemetry');
  t.teardown(() => sub.close());
  const alarms = new MemoryLane('alarms');
  const bulk = new MemoryLane('bulk');
  // Alarms are numbered from 1, bulk from 100,001, so the arrival order shows which lane went when.
  for (let i = 1; i <= 300; i += 1) {
    await alarms.append({ body: Buffer.from(String(i)) });
    await bulk.append({ body: Buffer.from(String(100_000 + i)) });
  }
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-3', protocolVersion: 4 });
  const lanes = [
    { lane: alarms, weight: 3 },
    { lane: bulk, weight: 1 },
  ];
  const pump = new Pump({ gatewayId: 'gw-3', transport, lanes, inflightMax: 8 });
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(600, 20_000));
  const firstHalf = sub.values.slice(0, 300);
  const bulkShare = firstHalf.filter((v) => v > 100_000).length / firstHalf.length;
  const share = `bulk got ${(bulkShare * 100).toFixed(0)}% while both had backlog (weight 1 of 4)`;
  t.ok(bulkShare > 0.15 && bulkShare < 0.35, share);
  const inLaneOrder = (lo: number, hi: number) => sub.values.filter((v) => v >= lo && v <= hi);
  t.same(
    inLaneOrder(1, 300),
    Array.from({ length: 300 }, (_, i) => i + 1),
    'alarms in their stored order',
  );
  t.same(
    inLaneOrder(100_001, 100_300),
    Array.from({ length: 300 }, (_, i) => 100_001 + i),
    'bulk in its stored order',
  );
});

t.test('expired records are stepped over and acked past', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-4/+/telemetry');
  t.teardown(() => sub.close());
  const lane = new MemoryLane('telemetry');
  await fill(lane, 1, 20);
  for (const seq of [3, 4, 18, 19, 20]) lane.expired.add(seq);
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-4', protocolVersion: 4 });
  const pump = new Pump({ gatewayId: 'gw-4', transport, lanes: [{ lane }] });
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(15, 10_000));
  await until('the cursor to move past the expired tail', () => lane.ackedSeq() === 20);
  t.same(sub.values, [1, 2, ...Array.from({ length: 13 }, (_, i) => i + 5)], 'live records only, in order');
  t.equal(lane.ackedSeq(), 20, 'the cursor moved past the expired tail');
});

t.test('a black-holed publish trips the watchdog and the drain resumes from the acked cursor', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-5/+/telemetry');
  t.teardown(() => sub.close());
  const lane = new MemoryLane('telemetry');
  await fill(lane, 1, 10);
  const url = `mqtt://127.0.0.1:${proxy.port}`;
  const transport = createMqttTransport({ url, gatewayId: 'gw-5', protocolVersion: 4, keepaliveSecs: 600 });
  const errors: string[] = [];
  const pump = new Pump({
    gatewayId: 'gw-5',
    transport,
    lanes: [{ lane }],
    publishTimeoutMs: 300,
    backoff: { baseMs: 20, maxMs: 100 },
    onError: (err) => errors.push(err.message),
  });
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(10, 10_000));
  proxy.blackhole();
  await fill(lane, 11, 20);
  await until('the publish timeout to be reported', () => errors.some((e) => /no PUBACK for 300 ms/.test(e)));
  proxy.pass();
  t.ok(await sub.waitForDistinct(20, 10_000), 'everything arrived once the link came back');
  t.same(checkDelivery(sub.values, 20, 100).problems, []);
});

t.test('bytesPerSecMax holds the drain to the cap', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-6/+/telemetry');
  t.teardown(() => sub.close());
  const lane = new MemoryLane('telemetry');
  const padding = ' '.repeat(995);
  for (let i = 1; i <= 40; i += 1) await lane.append({ body: Buffer.from(`${i}${padding}`.slice(0, 1_000)) });
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-6', protocolVersion: 4 });
  const pump = new Pump({ gatewayId: 'gw-6', transport, lanes: [{ lane }], bytesPerSecMax: 20_000 });
  const started = Date.now();
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(40, 10_000));
  // 40 kB at 20 kB/s with one second of burst: at least ~1 s. A lower bound only; slow machines take longer.
  t.ok(Date.now() - started >= 800, `took ${Date.now() - started} ms`);
});

t.test('options are validated with errors that name them', async (t) => {
  const lane = new MemoryLane('x');
  const transport = createMqttTransport({ url: 'mqtt://127.0.0.1:1', gatewayId: 'g' });
  const lanes = [{ lane }];
  t.throws(
    () => new Pump({ gatewayId: 'g', transport, lanes, inflightMax: 70_000 }),
    /"inflightMax" must be an integer from 1 to 4096 messages, got 70000/,
  );
  t.throws(() => new Pump({ gatewayId: 'g', transport, lanes: [] }), /"lanes" must list 1 to 16 lanes/);
  t.throws(() => new Pump({ gatewayId: 'g', transport, lanes: [{ lane, weight: 0 }] }), /"weight" of lane "x"/);
  t.throws(
    () => new Pump({ gatewayId: 'g', transport, lanes, backoff: { baseMs: 10, maxMs: 5 } }),
    /"backoff.maxMs" must be at least/,
  );
  t.throws(() => createMqttTransport({ url: 'http://x', gatewayId: 'g' }), /"url" must be mqtt:\/\/host:port/);
  const at = { url: 'mqtt://x', gatewayId: 'g' };
  t.throws(() => createMqttTransport({ ...at, topicTemplate: 'a/{nope}' }), /unknown placeholder \{nope\}/);
  t.throws(() => createMqttTransport({ ...at, cert: 'c' }), /"cert" and "key" must be given together/);
});
