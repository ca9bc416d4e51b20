import t from 'tap';
import type { StoredRecord } from '../../../firmware/store/types.js';
import { Cursor } from '../../../firmware/uplink/cursor.js';
import type { DrainHost } from '../../../firmware/uplink/drain-host.js';
import { DrainSession } from '../../../firmware/uplink/drain.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { TokenBucket } from '../../../firmware/uplink/rate.js';
import { AedesBroker } from '../../support/brokers.js';
import { ManualClock } from '../../support/manual-clock.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { until } from '../../support/until.js';

/**
 * Programmer errors at the pump's boundaries throw an assertion that names the invariant, instead of being
 * clamped or stalling without a word: a lane answering out of order, a window that is not a positive
 * integer, a bandwidth cap that is not a number.
 */

function record(seq: number): StoredRecord {
  return { seq, enqueuedAtMs: 0, expiresAtStoreMs: 0, properties: {}, body: Buffer.from(String(seq)) };
}

t.test('a read answer out of seq order, repeating a taken seq or past the durable seq is refused', async (t) => {
  const lane = new MemoryLane('telemetry');
  const cursor = new Cursor(lane, 1);
  t.throws(() => cursor.accept([record(2), record(1)], 5), /read returned seq 1 after 2 \(seqs in order\)/);
  t.throws(() => cursor.accept([record(3), record(3)], 5), /read returned seq 3 after 3/, 'a repeat');
  for (let i = 1; i <= 5; i += 1) await lane.append({ body: Buffer.from(String(i)) });
  const pastDurable = () => cursor.accept([record(1), record(6)], 5);
  t.throws(pastDurable, /read returned seq 6 past durable 5/, "past the lane's durable seq now");
  t.same(cursor.buffer, [], 'a refused answer leaves nothing buffered');
  t.equal(cursor.nextSeq, 1, 'nor moves the read position');
  cursor.accept([record(1), record(3)], 5);
  t.same(
    cursor.buffer.map((r) => r.seq),
    [1, 3],
    'gaps (expired records) are in order and accepted',
  );
  t.equal(cursor.nextSeq, 4);
  t.throws(() => cursor.accept([record(2)], 5), /read returned seq 2 after 3/, 'a seq below the read position');
  cursor.accept([], 5);
  t.equal(cursor.nextSeq, 6, 'an empty answer steps past the expired durable records');
});

t.test('the pump ends the session on a lane that answers out of order: reported, nothing acked', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const lane = new MemoryLane('telemetry');
  for (let i = 1; i <= 3; i += 1) await lane.append({ body: Buffer.from(String(i)) });
  // The bug under test: a lane whose read hands its records back newest first.
  const read = lane.read.bind(lane);
  lane.read = async (fromSeq, limits) => (await read(fromSeq, limits)).reverse();
  const errors: string[] = [];
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-order', protocolVersion: 4 });
  const onError = (err: Error) => errors.push(err.message);
  const pump = new Pump({ gatewayId: 'gw-order', transport, lanes: [{ lane }], onError });
  pump.start();
  t.teardown(() => pump.stop());
  await until('the assertion reported', () => errors.some((m) => m.includes('(seqs in order)')));
  t.match(errors[0], /read returned seq \d after 3 \(seqs in order\)/, 'the first error the pump met is the assertion');
  t.equal(lane.ackedSeq(), 0, 'nothing was acknowledged to the store');
});

t.test('a drain window that is not an integer >= 1 is refused', async (t) => {
  for (const windowMax of [Number.NaN, 0, -1, 1.5]) {
    const host = { windowMax, recovery: null } as unknown as DrainHost;
    t.throws(() => new DrainSession(host, []), /windowMax must be an integer >= 1, got/, `windowMax ${windowMax}`);
  }
});

t.test('a bandwidth cap that is NaN, negative or infinite is refused, at construction and live', async (t) => {
  const clock = new ManualClock();
  for (const rate of [Number.NaN, -1, Infinity]) {
    t.throws(() => new TokenBucket(rate, clock), /token bucket rate must be >= 0 bytes\/s/, `rate ${rate}`);
  }
  const bucket = new TokenBucket(1_000, clock);
  t.throws(() => bucket.setRate(Number.NaN), /token bucket rate must be >= 0 bytes\/s, got NaN/);
  t.equal(bucket.rate, 1_000, 'the refused rate did not replace the one in force');
  bucket.setRate(0);
  t.equal(bucket.take(1_000_000), 0, 'a rate of 0 is no cap');
});
