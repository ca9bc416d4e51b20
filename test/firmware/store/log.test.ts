import t from 'tap';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../support/manual-clock.js';
import { decodeCheckpoint } from '../../../firmware/store/checkpoint.js';
import { nodeFs, type StoreFs } from '../../../firmware/store/fs.js';
import { RingLog } from '../../../firmware/store/log.js';
import type { RingLogOptions } from '../../../firmware/store/options.js';
import { tempDir } from '../../support/tmp.js';

const SMALL: Partial<RingLogOptions> = {
  segmentBytes: 64 * 1024,
  quotaBytes: 4 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
};

async function drain(lane: Awaited<ReturnType<RingLog['lane']>>, from = 1) {
  const out = [];
  for (;;) {
    const recs = await lane.read(from, { recordsMax: 97 });
    if (recs.length === 0) return out;
    out.push(...recs);
    from = recs[recs.length - 1]!.seq + 1;
  }
}

t.test('appends come back in order with their properties, across segments and a reopen', async (t) => {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir, ...SMALL });
  const lane = await log.lane('upstream');
  const seqs = await Promise.all(
    Array.from({ length: 2000 }, (_, i) =>
      lane.append({ body: Buffer.from(`msg-${i}`), properties: { i: String(i) } }),
    ),
  );
  t.same(
    seqs,
    Array.from({ length: 2000 }, (_, i) => i + 1),
    'seqs are 1..n in append order',
  );
  const recs = await drain(lane);
  t.equal(recs.length, 2000);
  t.ok(recs.every((r, i) => r.body.toString() === `msg-${i}` && r.properties.i === String(i)));
  t.ok(log.stats().segmentCount > 1, 'more than one segment was used');
  await log.close();

  const again = await RingLog.open({ dir, ...SMALL });
  const lane2 = await again.lane('upstream');
  const recs2 = await drain(lane2);
  t.equal(recs2.length, 2000, 'everything is still there after a reopen');
  t.equal(await lane2.append({ body: Buffer.from('next') }), 2001, 'seqs continue after a reopen');
  await again.close();
});

t.test('ack moves the cursor; the checkpoint keeps it across a reopen; acked segments are deleted', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const opts = { dir, ...SMALL, clock, checkpointIntervalMs: 5 };
  const log = await RingLog.open(opts);
  const lane = await log.lane('upstream');
  for (let i = 0; i < 1000; i++) void lane.append({ body: Buffer.alloc(200, i & 0xff) });
  await lane.append({ body: Buffer.from('last') });
  const segmentsBefore = readdirSync(join(dir, 'lanes', 'upstream')).length;
  lane.ack(900);
  lane.ack(10); // backwards: ignored
  t.equal(lane.ackedSeq(), 900);
  await log.writeCheckpoint();
  const segmentsAfter = readdirSync(join(dir, 'lanes', 'upstream')).length;
  t.ok(segmentsAfter < segmentsBefore, `acked segments deleted (${segmentsBefore} -> ${segmentsAfter})`);
  const first = (await lane.read(1, { recordsMax: 1 }))[0]!;
  t.ok(first.seq <= 901, 'reading from the start finds at most the acked segments gone');
  await log.close();

  const again = await RingLog.open(opts);
  const lane2 = await again.lane('upstream');
  t.equal(lane2.ackedSeq(), 900, 'cursor survives the reopen');
  const rest = await drain(lane2, lane2.ackedSeq() + 1);
  t.same(
    rest.map((r) => r.seq),
    Array.from({ length: 101 }, (_, i) => 901 + i),
  );
  t.throws(() => lane2.ack(10_000), /past the last durable seq 1001/, 'an ack past the last seq is a programmer error');
  t.equal(lane2.ackedSeq(), 900, 'and leaves the cursor alone');
  await again.close();
});

t.test('the smallest segment board.json allows opens with the default group-commit bound', async (t) => {
  // board.json takes storage.segmentBytes down to 1 MiB and has no group-commit option: the default bound must
  // fit half a segment (the field VM's gateway died at start with a 1 MiB segment and the fixed 4 MiB default).
  const dir = tempDir(t);
  const sizes = { segmentBytes: 1024 * 1024, recordBytesMax: 64 * 1024, quotaBytes: 8 * 1024 * 1024 };
  const log = await RingLog.open({ dir, ...sizes });
  t.equal(log.opts.groupCommitBytesMax, 512 * 1024, 'the default group commit is half a segment');
  const lane = await log.lane('upstream');
  const body = Buffer.alloc(60 * 1024, 7);
  const seqs = await Promise.all(Array.from({ length: 40 }, () => lane.append({ body })));
  t.same(
    seqs,
    Array.from({ length: 40 }, (_, i) => i + 1),
    'a burst of 2.4 MiB is committed across segments',
  );
  t.equal((await drain(lane)).length, 40);
  await log.close();
  const big = await RingLog.open({ dir: tempDir(t), segmentBytes: 64 * 1024 * 1024 });
  t.equal(big.opts.groupCommitBytesMax, 4 * 1024 * 1024, 'larger segments keep the 4 MiB default');
  await big.close();
});

t.test('bad options and arguments are refused with the option named', async (t) => {
  const dir = tempDir(t);
  const tooSmall = /"segmentBytes" must be an integer between/;
  await t.rejects(RingLog.open({ dir, segmentBytes: 12 }), { code: 'INVALID', message: tooSmall });
  await t.rejects(RingLog.open({ dir, quotaBytes: 1024 }), { message: /"quotaBytes"/ });
  await t.rejects(RingLog.open({ dir, syncMode: 'sometimes' as never }), { message: /"syncMode"/ });
  await t.rejects(RingLog.open({ dir, quotaPolicy: 'panic' as never }), { message: /"quotaPolicy"/ });
  const log = await RingLog.open({ dir, ...SMALL });
  await t.rejects(log.lane('../etc'), { code: 'INVALID' });
  const lane = await log.lane('upstream');
  await t.rejects(lane.append({ body: Buffer.alloc(9000) }), { code: 'TOO_LARGE', message: /recordBytesMax/ });
  const big = { body: Buffer.from('x'), properties: { big: 'v'.repeat(70_000) } };
  await t.rejects(lane.append(big), { code: 'TOO_LARGE', message: /lane "upstream": property "big" value/ });
  await t.rejects(lane.append({ body: 'text' as never }), { code: 'INVALID' });
  await t.rejects(lane.append({ body: Buffer.from('x'), ttlSecs: -1 }), { message: /ttlSecs/ });
  // Programmer errors at the lane's boundary are assertions, not silently repaired arguments.
  await t.rejects(lane.read(0), { name: 'AssertionError', message: /read from 0, not a seq/ });
  await t.rejects(lane.read(1.5), { name: 'AssertionError', message: /read from 1.5/ });
  await t.rejects(lane.read(1, { recordsMax: 0 }), { name: 'AssertionError', message: /recordsMax 0/ });
  await t.rejects(lane.read(1, { bytesMax: -1 }), { name: 'AssertionError', message: /bytesMax -1/ });
  const nan = { recordsMax: Number.NaN };
  await t.rejects(lane.read(1, nan), { name: 'AssertionError', message: /recordsMax NaN, not an/ });
  await t.rejects(lane.read(Number.NaN), { name: 'AssertionError', message: /read from NaN, not a seq/ });
  t.throws(() => lane.ack(Number.NaN), { name: 'AssertionError', message: /ack\(NaN\) needs an integer seq/ });
  await log.close();
  await t.rejects(lane.append({ body: Buffer.from('x') }), { code: 'CLOSED' });
});

t.test('lanes are independent: own seqs, own cursors, own files', async (t) => {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir, ...SMALL });
  const a = await log.lane('upstream');
  const b = await log.lane('priority.high');
  await a.append({ body: Buffer.from('a1') });
  await b.append({ body: Buffer.from('b1') });
  await a.append({ body: Buffer.from('a2') });
  t.same(
    (await drain(a)).map((r) => r.body.toString()),
    ['a1', 'a2'],
  );
  t.same(
    (await drain(b)).map((r) => r.body.toString()),
    ['b1'],
  );
  a.ack(2);
  t.equal(b.ackedSeq(), 0);
  t.same(
    log.stats().lanes.map((l) => [l.lane, l.pendingRecords]),
    [
      ['upstream', 0],
      ['priority.high', 1],
    ],
  );
  await log.close();
});

t.test('onDurable fires after each group commit with the last durable seq', async (t) => {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir, ...SMALL });
  const lane = await log.lane('upstream');
  const seen: number[] = [];
  const off = lane.onDurable((seq) => seen.push(seq));
  await Promise.all([1, 2, 3].map((i) => lane.append({ body: Buffer.from(String(i)) })));
  t.equal(seen[seen.length - 1], 3);
  t.equal(lane.lastDurableSeq(), 3);
  off();
  await lane.append({ body: Buffer.from('4') });
  t.equal(seen[seen.length - 1], 3, 'unsubscribed listener is not called');
  await log.close();
});

t.test('interval and none sync modes resolve on write and are readable', async (t) => {
  for (const syncMode of ['interval', 'none'] as const) {
    const dir = tempDir(t);
    const log = await RingLog.open({ dir, ...SMALL, syncMode, syncIntervalMs: 5 });
    const lane = await log.lane('upstream');
    await Promise.all(Array.from({ length: 300 }, (_, i) => lane.append({ body: Buffer.from(String(i)) })));
    t.equal((await drain(lane)).length, 300, `${syncMode}: all readable`);
    await log.close();
    const again = await RingLog.open({ dir, ...SMALL, syncMode });
    t.equal((await drain(await again.lane('upstream'))).length, 300, `${syncMode}: all there after close/reopen`);
    await again.close();
  }
});

t.test('stats report pending records, bytes and the oldest pending age', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const log = await RingLog.open({ dir, ...SMALL, clock });
  const lane = await log.lane('upstream');
  await lane.append({ body: Buffer.alloc(100) });
  clock.advance(5000);
  await lane.append({ body: Buffer.alloc(100) });
  let s = log.stats().lanes[0]!;
  t.equal(s.pendingRecords, 2);
  t.equal(s.pendingBytes, 2 * 132);
  t.equal(s.oldestPendingAgeMs, 5000);
  await lane.read(1);
  lane.ack(1);
  s = log.stats().lanes[0]!;
  t.equal(s.pendingRecords, 1);
  t.equal(s.oldestPendingAgeMs, 0, 'the remaining record was enqueued now');
  const laneDir = join(dir, 'lanes', 'upstream');
  const segmentBytes = readdirSync(laneDir).reduce((n, f) => n + statSync(join(laneDir, f)).size, 0);
  t.equal(log.stats().bytesOnDisk, 8192 + segmentBytes, 'bytes on disk: the two checkpoint slots plus the segments');
  t.equal(log.stats().syncCount, 2, 'one group commit per awaited append');
  await log.close();
});

t.test('lastSyncLatencyMs is the time a group commit waits for the disk, the O_DSYNC write included', async (t) => {
  const SLOW_WRITE_MS = 30;
  const slowFs: StoreFs = {
    ...nodeFs,
    async open(path, mode, options) {
      const file = await nodeFs.open(path, mode, options);
      if (!options?.dsync) return file;
      const write = async (buf: Buffer, pos: number) => {
        await new Promise((r) => setTimeout(r, SLOW_WRITE_MS)); // a slow SD card's fdatasync
        return file.write(buf, pos);
      };
      return {
        write,
        read: (b, p) => file.read(b, p),
        datasync: () => file.datasync(),
        truncate: (l) => file.truncate(l),
        size: () => file.size(),
        close: () => file.close(),
      };
    },
  };
  const log = await RingLog.open({ dir: tempDir(t), ...SMALL, fs: slowFs });
  await (await log.lane('upstream')).append({ body: Buffer.from('x') });
  const latencyMs = log.stats().lastSyncLatencyMs;
  t.ok(latencyMs >= SLOW_WRITE_MS - 1, `${latencyMs.toFixed(1)} ms ≥ the ${SLOW_WRITE_MS} ms write`);
  await log.close();
});

t.test(
  'appendBatch: one promise for many records, all-or-nothing at the door, order kept with single appends',
  async (t) => {
    const dir = tempDir(t);
    const log = await RingLog.open({ dir, ...SMALL });
    const lane = await log.lane('upstream');
    const single = lane.append({ body: Buffer.from('first') });
    const inputs = Array.from({ length: 1500 }, (_, i) => ({
      body: Buffer.from(`b${i}`.padEnd(100)),
      properties: { i: String(i) },
    }));
    const last = await lane.appendBatch(inputs);
    t.equal(await single, 1);
    t.equal(last, 1501, 'resolves with the last seq once all are durable');
    const recs = await drain(lane);
    t.equal(recs.length, 1501);
    t.same(
      recs.slice(1, 4).map((r) => r.body.toString().trim()),
      ['b0', 'b1', 'b2'],
    );
    t.ok(log.stats().segmentCount > 1, 'the batch spanned segments');
    await t.rejects(lane.appendBatch([{ body: Buffer.from('ok') }, { body: Buffer.alloc(9000) }]), {
      code: 'TOO_LARGE',
    });
    await t.rejects(lane.appendBatch([]), { code: 'INVALID' });
    t.equal((await drain(lane, 1502)).length, 0, 'a refused batch stored nothing');
    t.equal(await lane.append({ body: Buffer.from('after') }), 1502);
    await log.close();
  },
);

t.test('a fast drain checkpoints every checkpointAckRecords acks, not only once per interval', async (t) => {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir, ...SMALL, checkpointIntervalMs: 3_600_000, checkpointAckRecords: 100 });
  const lane = await log.lane('upstream');
  await lane.appendBatch(Array.from({ length: 600 }, () => ({ body: Buffer.from('x') })));
  const durableAcked = () => {
    const file = readFileSync(join(dir, 'checkpoint'));
    const slots = [decodeCheckpoint(file.subarray(0, 4096)), decodeCheckpoint(file.subarray(4096, 8192))].filter(
      (s) => s !== null,
    );
    const newest = slots.sort((a, b) => b.generation - a.generation)[0];
    return newest?.lanes.get('upstream')?.ackedSeq ?? 0;
  };
  lane.ack(50);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(durableAcked(), 0, '50 acks: the checkpoint waits for its interval');
  lane.ack(250);
  await new Promise((r) => setTimeout(r, 50));
  t.equal(durableAcked(), 250, '200 more acks: checkpointed at once');
  // The last burst of a drain crosses the threshold while a checkpoint is being written (it took its
  // cursors before): that checkpoint goes round again instead of leaving the burst for an hour.
  lane.ack(400);
  lane.ack(520);
  const deadline = Date.now() + 2_000;
  while (durableAcked() !== 520 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
  t.equal(durableAcked(), 520, 'acks made during a checkpoint write are checkpointed right after it');
  await log.close();
});
