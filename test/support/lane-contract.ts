import type { Test } from 'tap';
import type { PumpLane } from '../../firmware/uplink/cursor.js';

/**
 * The lane as the pump sees it (PumpLane), written down once and run against every implementation: the
 * ring log's lane and the pump tests' MemoryLane (test/firmware/store/lane-contract.test.ts). A double that drifts from
 * the real lane would let pump tests pass on behaviour production never has.
 */
export interface LaneUnderTest {
  lane: PumpLane;
  close(): Promise<void>;
}

const body = (s: string) => Buffer.from(s);

async function appendAll(lane: PumpLane, bodies: string[]): Promise<number[]> {
  const seqs: number[] = [];
  for (const b of bodies) seqs.push(await lane.append({ body: body(b), properties: { b } }));
  return seqs;
}

export async function laneContract(t: Test, name: string, make: (t: Test) => Promise<LaneUnderTest>): Promise<void> {
  await t.test(`${name}: the lane contract the pump relies on`, async (t) => {
    const cases: Array<[string, (t: Test, lane: PumpLane) => Promise<void>]> = [
      ['appends get increasing seqs and read back in order, body and properties intact', appendsReadBack],
      ['a read stops at recordsMax, and once bytesMax is reached (but returns at least one record)', readLimits],
      ['a resolved append is durable: lastDurableSeq and onDurable have reached it; unsubscribe works', durability],
      ['ack moves the cursor forward only', ackForwardOnly],
      ['ack past the last durable record throws and leaves the cursor where it was', ackPastDurable],
    ];
    for (const [title, run] of cases) {
      await t.test(title, async (t) => {
        const { lane, close } = await make(t);
        try {
          await run(t, lane);
        } finally {
          await close();
        }
      });
    }
  });
}

async function appendsReadBack(t: Test, lane: PumpLane): Promise<void> {
  const seqs = await appendAll(lane, ['a', 'b', 'c', 'd']);
  t.ok(
    seqs.every((s, i) => i === 0 || s > seqs[i - 1]!),
    `seqs increase: ${seqs}`,
  );
  const all = await lane.read(seqs[0]!);
  t.same(
    all.map((r) => [r.seq, r.body.toString(), r.properties.b]),
    seqs.map((s, i) => [s, 'abcd'[i], 'abcd'[i]]),
  );
  const tail = await lane.read(seqs[2]!);
  t.same(
    tail.map((r) => r.seq),
    seqs.slice(2),
    'a read from a seq starts at that seq',
  );
  t.same(await lane.read(seqs[3]! + 1), [], 'a read past the last record returns nothing');
}

async function readLimits(t: Test, lane: PumpLane): Promise<void> {
  const seqs = await appendAll(
    lane,
    Array.from({ length: 10 }, (_, i) => String(i).repeat(100)),
  );
  const three = await lane.read(seqs[0]!, { recordsMax: 3 });
  t.same(
    three.map((r) => r.seq),
    seqs.slice(0, 3),
    'recordsMax 3: three records',
  );
  const bytesMax = 250;
  const limited = await lane.read(seqs[0]!, { bytesMax });
  const bound = limited.length >= 1 && limited.length < seqs.length;
  t.ok(bound, `bytesMax ${bytesMax}: ${limited.length} of ${seqs.length} records`);
  const beforeLast = limited.slice(0, -1).reduce((n, r) => n + r.body.length, 0);
  t.ok(beforeLast < bytesMax, `the records before the last hold ${beforeLast} B, under bytesMax`);
  const alone = await lane.read(seqs[0]!, { bytesMax: 1 });
  t.equal(alone.length, 1, 'a record larger than bytesMax still comes back alone');
}

async function durability(t: Test, lane: PumpLane): Promise<void> {
  const heard: number[] = [];
  const off = lane.onDurable((lastSeq) => heard.push(lastSeq));
  const seq = await lane.append({ body: body('x') });
  t.equal(lane.lastDurableSeq(), seq, 'lastDurableSeq is the resolved seq');
  t.ok(heard.length > 0 && heard[heard.length - 1]! >= seq, `onDurable heard ${heard} by the time append resolved`);
  off();
  const count = heard.length;
  await lane.append({ body: body('y') });
  t.equal(heard.length, count, 'an unsubscribed listener hears nothing more');
}

async function ackForwardOnly(t: Test, lane: PumpLane): Promise<void> {
  const seqs = await appendAll(lane, ['a', 'b', 'c']);
  t.equal(lane.ackedSeq(), seqs[0]! - 1, 'nothing acked yet');
  lane.ack(seqs[1]!);
  t.equal(lane.ackedSeq(), seqs[1]);
  lane.ack(seqs[0]!);
  t.equal(lane.ackedSeq(), seqs[1], 'an older seq does not move the cursor back');
  lane.ack(seqs[2]!);
  t.equal(lane.ackedSeq(), seqs[2], 'up to the last durable record');
}

async function ackPastDurable(t: Test, lane: PumpLane): Promise<void> {
  const [first] = await appendAll(lane, ['a']);
  t.throws(() => lane.ack(first! + 1), /past the last durable seq/, 'one past the last durable record');
  t.throws(() => lane.ack(first! + 0.5), /integer seq/, 'a fractional seq');
  t.equal(lane.ackedSeq(), first! - 1, 'the cursor did not move');
}
