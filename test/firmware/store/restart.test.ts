import t from 'tap';
import { ManualClock } from '../../support/manual-clock.js';
import { RingLog } from '../../../firmware/store/log.js';
import type { RingLogOptions } from '../../../firmware/store/options.js';
import { crashState, SimFs } from '../../support/crash-fs.js';
import { prng } from '../../support/prng.js';

/**
 * Promises that must hold across a crash and a restart, on the power-cut simulator's file system. A
 * SIGKILL keeps the page cache ('everything' survives); a power cut keeps only what was synced
 * ('durable-only'). Timers never fire on their own here: the tests run the retention pass themselves.
 */
const ROOT = '/mnt';
const DIR = `${ROOT}/data`;
const OPTS: Partial<RingLogOptions> = {
  segmentBytes: 4096,
  recordBytesMax: 1024,
  groupCommitBytesMax: 2048,
  quotaBytes: 4 * 4096,
  checkpointIntervalMs: 3_600_000,
  retentionIntervalMs: 3_600_000,
};

type Fate = 'everything' | 'durable-only';

async function restart(fs: SimFs, clock: ManualClock, fate: Fate, old: RingLog): Promise<{ fs: SimFs; log: RingLog }> {
  const state = crashState(fs, fs.ops.length, fate, prng(1));
  await old.close(); // after the state was taken: what close writes is not part of the crash
  return { fs: state, log: await RingLog.open({ ...OPTS, dir: DIR, fs: state, clock }) };
}

const body = (s: string) => ({ body: Buffer.from(s) });

t.test('a TTL sweep that deletes a lane’s newest records does not let a restart reuse their seqs', async (t) => {
  const clock = new ManualClock({ synced: false });
  const fs = new SimFs(ROOT);
  const log = await RingLog.open({ ...OPTS, dir: DIR, fs, clock });
  const lane = await log.lane('upstream');
  await lane.appendBatch([1, 2, 3, 4, 5].map((i) => ({ ...body(`short-${i}`), ttlSecs: 1 })));
  clock.advance(2_000);
  await log.maintenancePass();
  t.equal(log.stats().segmentCount, 0, 'the expired segment (the lane’s newest records) is deleted');
  const after = await restart(fs, clock, 'everything', log);
  const seq = await (await after.log.lane('upstream')).append(body('new'));
  t.equal(seq, 6, 'the next seq after the restart follows the deleted ones (5 was already issued)');
  await after.log.close();
});

t.test('drop-oldest taking another lane’s active segment does not let a restart reuse its seqs', async (t) => {
  const clock = new ManualClock({ synced: false });
  const fs = new SimFs(ROOT);
  const log = await RingLog.open({ ...OPTS, dir: DIR, fs, clock });
  const quiet = await log.lane('quiet');
  t.equal(await quiet.appendBatch([body('q1'), body('q2')]), 2);
  const busy = await log.lane('busy');
  while (log.stats().droppedRecords === 0) await busy.append(body('b'.repeat(900)));
  const quietSegments = log.stats().lanes.find((l) => l.lane === 'quiet')!.segments;
  t.equal(quietSegments, 0, 'the quiet lane’s only segment was dropped');
  const after = await restart(fs, clock, 'everything', log);
  t.equal(await (await after.log.lane('quiet')).append(body('q3')), 3, 'the quiet lane goes on at seq 3');
  await after.log.close();
});

t.test('a data directory the store creates is durable in its parent before anything is acknowledged', async (t) => {
  const clock = new ManualClock({ synced: false });
  const fs = new SimFs(ROOT);
  const log = await RingLog.open({ ...OPTS, dir: DIR, fs, clock });
  const seq = await (await log.lane('upstream')).append(body('kept'));
  const after = await restart(fs, clock, 'durable-only', log);
  const lane = after.log.lanes.get('upstream');
  t.ok(lane, 'the lane survives a power cut right after the acknowledged append');
  t.same(
    (await lane!.read(1)).map((r) => [r.seq, r.body.toString()]),
    [[seq, 'kept']],
    'and so does its record',
  );
  await after.log.close();
});

t.test('the store clock advances across a crash loop of lives shorter than a minute', async (t) => {
  const LIFE_MS = 50_000;
  const TTL_SECS = 300;
  const clock = new ManualClock({ synced: false });
  let fs = new SimFs(ROOT);
  let log = await RingLog.open({ ...OPTS, dir: DIR, fs, clock });
  await (await log.lane('upstream')).append({ ...body('five-minutes'), ttlSecs: TTL_SECS });
  // Each life runs the retention timer once a second, then dies (SIGKILL: no final checkpoint).
  let lives = 0;
  const livesMax = 72;
  for (; lives < livesMax; lives++) {
    const lane = log.lanes.get('upstream');
    if (!lane || (await lane.read(1)).length === 0) break;
    for (let ms = 0; ms < LIFE_MS; ms += 1_000) {
      clock.advance(1_000);
      await log.maintenancePass();
    }
    clock.reboot({ wallMs: clock.wallMs(), synced: false });
    ({ fs, log } = await restart(fs, clock, 'everything', log));
  }
  // With a clock checkpoint every 10 s a life keeps at least 40 of its 50 s: 300 s of TTL take 8 lives.
  t.ok(lives <= Math.ceil(TTL_SECS / 40), `the 5-minute record expired after ${lives} lives of 50 s (of ${livesMax})`);
  await log.close();
});

t.test('a failed checkpoint write never costs the last good checkpoint, even if the retry is torn', async (t) => {
  const clock = new ManualClock({ synced: false });
  const fs = new SimFs(ROOT);
  const log = await RingLog.open({ ...OPTS, dir: DIR, fs, clock });
  const lane = await log.lane('upstream');
  await lane.appendBatch([1, 2, 3, 4].map((i) => body(`r${i}`)));
  lane.ack(2);
  await log.writeCheckpoint();
  lane.ack(3);
  fs.failDatasyncIn = 1;
  await t.rejects(log.writeCheckpoint(), { code: 'EIO' }, 'the checkpoint write fails');
  const failedAt = fs.ops.length - 1;
  lane.ack(4);
  await log.writeCheckpoint();
  const retryAt = fs.ops.findIndex((op, i) => i > failedAt && op.t === 'write');
  const slotOf = (i: number) => (fs.ops[i] as { pos: number }).pos;
  t.equal(slotOf(retryAt), slotOf(failedAt), 'the retry goes to the slot of the failed write, not the good one');
  // A power cut while the retry is being written: it and the failed write may each be kept, torn or lost.
  const cursors = new Set<number>();
  for (let seed = 1; seed <= 30; seed++) {
    const state = crashState(fs, retryAt + 1, 'random', prng(seed));
    const reopened = await RingLog.open({ ...OPTS, dir: DIR, fs: state, clock });
    cursors.add(reopened.lanes.get('upstream')?.ackedSeq() ?? 0);
    await reopened.close();
  }
  t.ok(
    [...cursors].every((c) => c >= 2 && c <= 4),
    `every state resumes from a checkpoint (cursors ${[...cursors]})`,
  );
  await log.close();
});

/** Deletions that take a while, as on a busy SD card: a retention pass is still deleting when close runs. */
class SlowUnlinkFs extends SimFs {
  override async unlink(path: string): Promise<void> {
    await new Promise((r) => setTimeout(r, 5));
    return super.unlink(path);
  }
}

t.test('close waits for a retention pass under way: nothing touches the disk once close resolved', async (t) => {
  const clock = new ManualClock({ synced: false });
  const fs = new SlowUnlinkFs(ROOT);
  const log = await RingLog.open({ ...OPTS, quotaBytes: 256 * 1024, dir: DIR, fs, clock });
  const lane = await log.lane('upstream');
  await lane.appendBatch(Array.from({ length: 200 }, (_, i) => ({ ...body(`r${i}`.padEnd(200)), ttlSecs: 1 })));
  t.ok(log.stats().segmentCount > 5, `${log.stats().segmentCount} segments to expire`);
  clock.advance(2_000);
  const pass = log.maintenancePass(); // the retention timer fires just before the stop
  await log.close();
  const opsAtClose = fs.ops.length;
  await pass;
  t.equal(fs.ops.length, opsAtClose, 'no operation after close resolved');
});

t.test('after a restart with every record acked and deleted, acking the cursor again is harmless', async (t) => {
  const clock = new ManualClock({ synced: false });
  const fs = new SimFs(ROOT);
  const log = await RingLog.open({ ...OPTS, dir: DIR, fs, clock });
  const lane = await log.lane('upstream');
  const last = await lane.appendBatch([1, 2, 3].map((i) => body(`r${i}`)));
  lane.ack(last);
  await log.writeCheckpoint();
  t.equal(log.stats().segmentCount, 0, 'the acked segment is deleted');
  const after = await restart(fs, clock, 'everything', log);
  const again = after.log.lanes.get('upstream')!;
  t.equal(again.ackedSeq(), last, 'the cursor is past every record left on disk');
  t.doesNotThrow(() => again.ack(last), 'acking it again changes nothing and does not throw');
  t.throws(() => again.ack(last + 1), /past the last durable seq/, 'one further is still refused');
  await after.log.close();
});
