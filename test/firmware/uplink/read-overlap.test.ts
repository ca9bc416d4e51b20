import t from 'tap';
import { RingLog } from '../../../firmware/store/log.js';
import type { PumpLane } from '../../../firmware/uplink/cursor.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { AedesBroker } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

/**
 * A group commit that lands while the pump's read is queued makes the read return more records than were
 * durable when the pump asked. That is the lane keeping its contract (it returns durable records only), and
 * the pump must take them. It used to assert "read returned seq N past durable M", end the session and
 * reconnect: on a busy gateway a reconnect now and then, each sending its in-flight window again.
 */

const GATEWAY_ID = 'gw-overlap';
/** Records in the lane before the pump starts. */
const STORED_FIRST = 5;
/** Reads during which one more record commits, between the pump's look at the durable seq and the read. */
const OVERLAPPED_READS = 3;

t.test('records committed while a read was queued are taken, on one connection, with no error', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, `outpost/${GATEWAY_ID}/+/telemetry`);
  t.teardown(() => sub.close());
  const log = await RingLog.open({ dir: tempDir(t), ttlSecs: 0 });
  t.teardown(() => log.close());
  const real = await log.lane('telemetry');
  // Bodies are their seqs (appends here run one at a time), so the subscriber checks the order.
  const appendNext = () => real.append({ body: Buffer.from(String(real.lastDurableSeq() + 1)) });
  for (let i = 1; i <= STORED_FIRST; i += 1) await appendNext();

  let overlapped = 0;
  const lane: PumpLane = {
    name: real.name,
    append: (input) => real.append(input),
    // The real lane's read, after one more record's group commit: as when a producer's batch lands while
    // the read waits its turn behind another.
    read: async (fromSeq, limits) => {
      if (overlapped < OVERLAPPED_READS) {
        overlapped += 1;
        await appendNext();
      }
      return real.read(fromSeq, limits);
    },
    ack: (seq) => real.ack(seq),
    ackedSeq: () => real.ackedSeq(),
    lastDurableSeq: () => real.lastDurableSeq(),
    onDurable: (listener) => real.onDurable(listener),
  };
  const errors: string[] = [];
  const transport = createMqttTransport({ url: broker.url, gatewayId: GATEWAY_ID, protocolVersion: 4 });
  const onError = (err: Error) => errors.push(err.message);
  const pump = new Pump({ gatewayId: GATEWAY_ID, transport, lanes: [{ lane }], onError });
  pump.start();
  t.teardown(() => pump.stop());

  // The first read overlaps a commit; each later one is woken by a producer's record and overlaps another.
  let total = STORED_FIRST + 1;
  for (let read = 1; read <= OVERLAPPED_READS; read += 1) {
    if (read > 1) {
      await appendNext();
      total += 2;
    }
    const arrived = await sub.waitForDistinct(total, 10_000);
    t.ok(arrived, `read ${read}: all ${total} records so far arrived`, { errors, values: sub.values });
  }
  await until('the store cursor to catch up', () => real.ackedSeq() === total);
  t.equal(overlapped, OVERLAPPED_READS, `${OVERLAPPED_READS} reads overlapped a commit`);
  t.same(errors, [], 'no error reported');
  t.equal(pump.status().connects, 1, 'one connection throughout');
  t.same(checkDelivery(sub.values, total, 0).problems, [], 'in order, no duplicates');
});
