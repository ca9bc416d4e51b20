import t from 'tap';
import { setImmediate as tick } from 'node:timers/promises';
import { AedesBroker, Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { AckHoldingTransport } from '../../support/ack-holding-transport.js';
import { ReceiveMaximumProxy } from '../../support/receive-maximum-proxy.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { until } from '../../support/until.js';

/** The in-flight window: its size, what its acknowledgements move, and how lanes share it. */

async function fill(lane: MemoryLane, from: number, to: number, bytes = 1): Promise<void> {
  for (let i = from; i <= to; i += 1) await lane.append({ body: Buffer.from(String(i).padEnd(bytes, ' ')) });
}

t.test("the window is the server's Receive Maximum when that is lower than inflightMax", async (t) => {
  const broker = await Mosquitto.start({ extraConfig: ['max_inflight_messages 10'] });
  t.teardown(() => broker.stop());
  const proxy = await ReceiveMaximumProxy.start(broker.port);
  t.teardown(() => proxy.close());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-rm/+/telemetry', { protocolVersion: 5 });
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  await fill(lane, 1, 500);
  const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${proxy.port}`, gatewayId: 'gw-rm' });
  const backoff = { baseMs: 20, maxMs: 100 };
  const pump = new Pump({ gatewayId: 'gw-rm', transport, lanes: [{ lane }], inflightMax: 100, backoff });
  pump.start();
  t.teardown(() => pump.stop());
  await until('a connection', () => pump.status().windowMax !== null);
  t.equal(pump.status().windowMax, 10, 'the window in force, in status');
  t.ok(await sub.waitForDistinct(500, 20_000), 'everything arrived');
  t.same(checkDelivery(sub.values, 500, 10).problems, []);
  t.equal(proxy.violations, 0, 'never more unacknowledged publishes than the broker allows');
  t.ok(proxy.outstandingMax <= 10, `at most ${proxy.outstandingMax} unacknowledged on the wire`);
  t.equal(pump.status().connects, 1, 'one connection throughout');
});

t.test('the ack only covers contiguous PUBACKs, whatever order they come in', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-ooo/+/telemetry');
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  await fill(lane, 1, 6);
  const mqttTransport = createMqttTransport({ url: broker.url, gatewayId: 'gw-ooo', protocolVersion: 4 });
  const transport = new AckHoldingTransport(mqttTransport);
  const pump = new Pump({ gatewayId: 'gw-ooo', transport, lanes: [{ lane }], inflightMax: 6, ackBatchRecords: 1 });
  pump.start();
  t.teardown(() => pump.stop());
  await until('six PUBACKs held', () => transport.held.size === 6);
  t.ok(await sub.waitForDistinct(6, 5_000), 'the broker has them all');

  const releaseThenSettle = async (...seqs: number[]) => {
    for (const seq of seqs) transport.release(seq);
    // Each PUBACK's effect is a chain of promise reactions; a macrotask turn lets all of them run.
    await tick();
    return lane.ackedSeq();
  };
  t.equal(await releaseThenSettle(2, 3), 0, 'PUBACKs for 2 and 3 without 1 move nothing');
  t.equal(await releaseThenSettle(1), 3, '1 arrives: the cursor jumps over 1..3');
  t.equal(await releaseThenSettle(6, 5), 3, '5 and 6 wait for 4');
  t.equal(await releaseThenSettle(4), 6, '4 arrives: all six');
  t.same(lane.ackCalls, [3, 6], 'acks only at contiguous frontiers');
});

t.test('under bytesPerSecMax each lane still gets its weighted share of the sends', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-fair/+/telemetry');
  t.teardown(() => sub.close());
  const heavy = new MemoryLane('heavy');
  const light = new MemoryLane('light');
  // heavy is numbered from 1, light from 100,001, so the arrival order shows which lane went when.
  for (let i = 1; i <= 120; i += 1) {
    await heavy.append({ body: Buffer.from(String(i).padEnd(500, ' ')) });
    await light.append({ body: Buffer.from(String(100_000 + i).padEnd(500, ' ')) });
  }
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-fair', protocolVersion: 4 });
  // 20 kB/s of 500-byte bodies: the cap, not the broker, decides when each message goes.
  const lanes = [
    { lane: heavy, weight: 2 },
    { lane: light, weight: 1 },
  ];
  const pump = new Pump({ gatewayId: 'gw-fair', transport, lanes, bytesPerSecMax: 20_000 });
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(120, 20_000));
  const firstHundredAndTwenty = sub.values.slice(0, 120);
  const lightShare = firstHundredAndTwenty.filter((v) => v > 100_000).length / firstHundredAndTwenty.length;
  const got = `light got ${(lightShare * 100).toFixed(1)}% while both had backlog (weight 1 of 3)`;
  t.ok(lightShare > 0.3 && lightShare < 0.37, got);
});
