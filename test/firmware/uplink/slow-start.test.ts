import t from 'tap';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { WINDOW_AFTER_RECONNECT_MESSAGES } from '../../../firmware/uplink/recovery.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { ReceiveMaximumProxy } from '../../support/receive-maximum-proxy.js';
import { until } from '../../support/until.js';

/**
 * Drain ramp-up: every connection, the first at boot and one after a plain reconnect (nothing in flight
 * when the last one died), starts with a window of WINDOW_AFTER_RECONNECT_MESSAGES and grows it per PUBACK,
 * rather than putting inflightMax publishes on the wire at once. Seen on the wire between the pump and a real
 * mosquitto: the PUBLISHes sent before the broker's first PUBACK on each connection.
 */

t.test('the first round trip of each connection carries at most the start window', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const wire = await ReceiveMaximumProxy.start(broker.port);
  t.teardown(() => wire.close());
  const link = await FaultProxy.start({ targetPort: wire.port });
  t.teardown(() => link.close());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-ramp/+/telemetry', { protocolVersion: 5 });
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  const fill = async (from: number, to: number) => {
    for (let i = from; i <= to; i += 1) await lane.append({ body: Buffer.from(String(i)) });
  };
  await fill(1, 1_000);
  const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${link.port}`, gatewayId: 'gw-ramp' });
  const backoff = { baseMs: 20, maxMs: 50 };
  const pump = new Pump({ gatewayId: 'gw-ramp', transport, lanes: [{ lane }], inflightMax: 100, backoff });
  pump.start();
  t.teardown(() => pump.stop());
  const drained = () => lane.ackedSeq() === 1_000 && pump.status().inflight === 0;
  await until('the boot backlog delivered', drained, 20_000);

  link.refuse();
  link.cut();
  await until('the pump backing off', () => pump.status().link === 'backoff');
  await fill(1_001, 2_000);
  link.pass();
  t.ok(await sub.waitForDistinct(2_000, 30_000), 'both backlogs arrived');
  t.same(checkDelivery(sub.values, 2_000, 100).problems, [], 'in order, complete');
  t.equal(wire.firstRoundTrips.length, 2, 'two connections carried publishes');
  for (const [i, sent] of wire.firstRoundTrips.entries()) {
    t.ok(sent <= WINDOW_AFTER_RECONNECT_MESSAGES, `connection ${i + 1}: ${sent} publishes before the first PUBACK`);
  }
});
