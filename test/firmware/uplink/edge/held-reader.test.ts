import t from 'tap';
import type { StoredRecord } from '../../../../firmware/store/types.js';
import { HeldReader } from '../../../../firmware/uplink/edge/held-reader.js';
import type { Entry } from '../../../../firmware/uplink/edge/lane-cursor.js';
import type { IdentityState } from '../../../../firmware/uplink/edge/pool.js';
import { IdentityQueues } from '../../../../firmware/uplink/edge/queues.js';
import { MemoryLane } from '../../../support/memory-lane.js';
import { until } from '../../../support/until.js';

/**
 * The holding lane's reader on its own, a read at a time, on a lane in memory and with connection states set
 * by the test: which identities it defers, what it reads again, and how far the lane is acknowledged.
 */

const LIMITS = { readBatchRecordsMax: 4, readBatchBytesMax: 1 << 20 };
/** Records read ahead: one page of LIMITS. */
const READ_AHEAD = 4;

async function readerOn(who: string[]) {
  const lane = new MemoryLane('held');
  for (const id of who) await lane.append({ body: Buffer.alloc(0), properties: { who: id } });
  const states = new Map<string, IdentityState>();
  const queues = new IdentityQueues();
  const reader = new HeldReader(lane, READ_AHEAD, queues, {
    state: (identity) => states.get(identity) ?? 'up',
    want: () => {},
    identityOf: (record: StoredRecord) => record.properties.who!,
    monoMs: () => 0,
  });
  const cursor = reader.cursor;
  const delivered: string[] = [];
  const listener = {
    ended: () => false,
    take: (record: StoredRecord) => {
      const entry: Entry = {
        record,
        identity: record.properties.who!,
        cursor,
        state: 'queued',
        queuedAtMs: 0,
        sentAtMs: 0,
      };
      cursor.add(entry);
      queues.push(entry);
    },
    taken: () => cursor.flushAck(1, false),
    failed: (err: unknown) => void t.fail(String(err)),
    retry: () => {},
  };
  return {
    lane,
    states,
    reader,
    delivered,
    /** One read (ahead, or again), done. */
    async step() {
      reader.read(LIMITS, listener);
      await until('the read', () => !cursor.reading);
    },
    /** What the read-ahead holds: identity and seq. */
    held: () => cursor.entries.map((e) => `${e.identity}${e.record.seq}`),
    /** Every queued record of an up identity delivered, as the session would. */
    deliver() {
      for (const [identity, queue] of queues) {
        if ((states.get(identity) ?? 'up') !== 'up') continue;
        for (const entry of queue) ((entry.state = 'done'), delivered.push(`${identity}${entry.record.seq}`));
        queues.delete(identity);
      }
      cursor.shiftDone();
      cursor.flushAck(1, false);
    },
  };
}

t.test('a range is read again when its identity is up, though the lane is read to its end', async (t) => {
  const r = await readerOn(['b', 'b', 'b', 'b', 'a', 'a', 'a', 'a']);
  r.states.set('b', 'backoff');
  await r.step();
  t.same(r.held(), ['b1', 'b2', 'b3', 'b4'], 'the read-ahead full of b');
  await r.step();
  t.ok(r.reader.deferred('b'), 'b deferred');
  t.same(r.held(), ['a5', 'a6', 'a7', 'a8'], "a's records read behind b's");
  r.states.set('a', 'backoff');
  r.states.set('b', 'up');
  await r.step();
  t.ok(r.reader.deferred('a'), "a deferred to make room for b's range");
  t.same(r.held(), ['b1', 'b2', 'b3', 'b4'], "b's records read again");
  r.deliver();
  t.notOk(r.reader.deferred('b'), 'b no longer deferred');
  t.equal(r.lane.ackedSeq(), 4, "acknowledged up to a's range");
  r.states.set('a', 'up');
  await r.step();
  r.deliver();
  t.same(r.delivered, ['b1', 'b2', 'b3', 'b4', 'a5', 'a6', 'a7', 'a8'], 'each once, in the lane order');
  t.equal(r.lane.ackedSeq(), 8, 'acknowledged to the end');
});

t.test("a deferred identity's later records join its range and come again in order, page by page", async (t) => {
  const r = await readerOn(['a', 'a', 'a', 'a', 'b', 'a', 'b', 'a', 'b', 'a']);
  r.states.set('a', 'backoff');
  await r.step();
  await r.step();
  t.same(r.held(), ['b5', 'b7'], "a deferred, its records dropped as they are read, b's kept");
  r.deliver();
  await r.step();
  r.deliver();
  t.same(r.delivered, ['b5', 'b7', 'b9'], 'b delivered while a is down');
  t.equal(r.lane.ackedSeq(), 0, "nothing acknowledged before a's first record");
  await r.lane.append({ body: Buffer.alloc(0), properties: { who: 'a' } });
  r.states.set('a', 'up');
  for (let i = 0; i < 3; i += 1) {
    await r.step();
    r.deliver();
  }
  t.notOk(r.reader.deferred('a'), 'its whole range read again');
  await r.step();
  r.deliver();
  t.same(r.delivered.slice(3), ['a1', 'a2', 'a3', 'a4', 'a6', 'a8', 'a10', 'a11'], 'a: in the lane order');
  t.equal(r.lane.ackedSeq(), 11, 'acknowledged to the end');
});
