import t from 'tap';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ManualClock } from '../../support/manual-clock.js';
import { RingLog } from '../../../firmware/store/log.js';
import { SEAL_RECORD_BYTES } from '../../../firmware/store/record.js';
import { tempDir } from '../../support/tmp.js';

const SEG = 64 * 1024;
const QUOTA = 4 * SEG;
const OPTS = { segmentBytes: SEG, quotaBytes: QUOTA, recordBytesMax: 8 * 1024, groupCommitBytesMax: 16 * 1024 };
const DAY_MS = 86_400_000;

/** Bytes on disk as the quota counts them: the checkpoint always as its two 4 KiB slots (reserved up front). */
function bytesOnDisk(dir: string): number {
  let total = Math.max(statSync(join(dir, 'checkpoint')).size, 8192);
  for (const lane of readdirSync(join(dir, 'lanes'))) {
    for (const f of readdirSync(join(dir, 'lanes', lane))) total += statSync(join(dir, 'lanes', lane, f)).size;
  }
  return total;
}

async function seqsFrom(lane: Awaited<ReturnType<RingLog['lane']>>, from = 1): Promise<number[]> {
  const out: number[] = [];
  for (;;) {
    const recs = await lane.read(from, { recordsMax: 500 });
    if (!recs.length) return out;
    out.push(...recs.map((r) => r.seq));
    from = out[out.length - 1]! + 1;
  }
}

t.test('drop-oldest: never over the quota after any append; drops counted; readers see the gap', async (t) => {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir, ...OPTS, quotaPolicy: 'drop-oldest' });
  const lane = await log.lane('upstream');
  let maxSeen = 0;
  let checks = 0;
  const check = () => {
    maxSeen = Math.max(maxSeen, bytesOnDisk(dir));
    checks++;
  };
  for (let round = 0; round < 40; round++) {
    await Promise.all(Array.from({ length: 100 }, () => lane.append({ body: Buffer.alloc(200) }).then(check)));
    t.equal(log.stats().bytesOnDisk, bytesOnDisk(dir), 'accounting matches the files');
  }
  t.equal(checks, 4000, 'bytes on disk measured as each of the 4000 appends resolved');
  t.ok(maxSeen <= QUOTA, `max on disk ${maxSeen} ≤ quota ${QUOTA}`);
  const seqs = await seqsFrom(lane);
  t.ok(seqs[0]! > 1, `oldest records dropped; reading starts at ${seqs[0]}`);
  t.equal(seqs[seqs.length - 1], 4000, 'the newest record is kept');
  t.same(
    seqs,
    Array.from({ length: seqs.length }, (_, i) => seqs[0]! + i),
    'what is left is contiguous',
  );
  t.equal(log.stats().droppedRecords, seqs[0]! - 1, 'every dropped record is counted');
  await log.close();
});

/** Small segments, so that for these body sizes a segment roll (and its 72-byte seal) falls at the quota. */
const TIGHT = { segmentBytes: 4096, quotaBytes: 4 * 4096, recordBytesMax: 1024, groupCommitBytesMax: 2048 };

t.test('reject-new: never over the quota after any append, seals included; FULL, then room once acked', async (t) => {
  for (const bodyBytes of [100, 101, 121, 300]) {
    const dir = tempDir(t);
    const log = await RingLog.open({ dir, ...TIGHT, quotaPolicy: 'reject-new', checkpointIntervalMs: 1 });
    const lane = await log.lane('upstream');
    let accepted = 0;
    let full: unknown = null;
    let maxSeen = 0;
    for (let i = 0; i < 1000 && !full; i++) {
      try {
        await lane.append({ body: Buffer.alloc(bodyBytes) });
        accepted++;
      } catch (err) {
        full = err;
      }
      maxSeen = Math.max(maxSeen, bytesOnDisk(dir));
    }
    t.match(full, { code: 'FULL', message: /quotaBytes/ }, `${bodyBytes} B bodies: FULL after ${accepted}`);
    t.ok(maxSeen <= TIGHT.quotaBytes, `${bodyBytes} B bodies: max on disk ${maxSeen} ≤ quota ${TIGHT.quotaBytes}`);
    t.equal(log.stats().droppedRecords, 0, 'reject-new never drops');
    t.same((await seqsFrom(lane)).length, accepted, 'every accepted record is readable');
    const recordBytes = 32 + bodyBytes;
    const laneDir = join(dir, 'lanes', 'upstream');
    const sizes = readdirSync(laneDir)
      .sort()
      .map((f) => statSync(join(laneDir, f)).size);
    const sealed = sizes.slice(0, -1).every((n) => (n - SEAL_RECORD_BYTES) % recordBytes === 0);
    t.ok(sealed, `every rolled segment ends in its seal (${sizes})`);
    lane.ack(accepted);
    await log.writeCheckpoint();
    t.ok(bytesOnDisk(dir) <= TIGHT.quotaBytes, 'within the quota after the checkpoint');
    t.ok(await lane.append({ body: Buffer.alloc(bodyBytes) }), 'room again after the acked segments went');
    t.ok(bytesOnDisk(dir) <= TIGHT.quotaBytes, 'within the quota after the append that follows');
    await log.close();
  }
});

t.test('TTL: expired records are never returned and their segments are deleted', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const log = await RingLog.open({ dir, ...OPTS, clock, ttlSecs: 60 });
  const lane = await log.lane('upstream');
  await Promise.all(Array.from({ length: 600 }, () => lane.append({ body: Buffer.alloc(200) })));
  await lane.append({ body: Buffer.from('forever'), ttlSecs: 0 });
  clock.advance(30_000);
  await Promise.all(Array.from({ length: 10 }, () => lane.append({ body: Buffer.from('young') })));
  clock.advance(31_000);
  const left = await lane.read(1, { recordsMax: 1000 });
  t.same(
    left.map((r) => r.body.toString()),
    ['forever', ...Array(10).fill('young')],
    'only unexpired records come back',
  );
  t.equal(log.stats().expiredRecords, 600);
  await log.writeCheckpoint();
  t.equal(readdirSync(join(dir, 'lanes', 'upstream')).length, 1, 'segments holding only expired records are gone');
  await log.close();
});

t.test('TTL survives wall-clock steps of days in both directions', async (t) => {
  for (const stepMs of [+5 * DAY_MS, -5 * DAY_MS, +400 * DAY_MS]) {
    const dir = tempDir(t);
    const clock = new ManualClock({ synced: false });
    const log = await RingLog.open({ dir, ...OPTS, clock, ttlSecs: 3600 });
    const lane = await log.lane('upstream');
    await lane.append({ body: Buffer.from('a') });
    clock.stepWall(stepMs);
    await lane.append({ body: Buffer.from('b') });
    t.equal((await lane.read(1)).length, 2, `step ${stepMs / DAY_MS} days: nothing expires en masse`);
    clock.advance(3_599_000);
    t.equal((await lane.read(1)).length, 2, 'still alive just before the TTL');
    clock.advance(2_000);
    t.equal((await lane.read(1)).length, 0, 'expired after the TTL of real elapsed time');
    await log.close();
  }
});

t.test('TTL across a reboot without an RTC: downtime is not counted, records do not live forever', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock({ wallMs: Date.UTC(2026, 5, 1), synced: true });
  let log = await RingLog.open({ dir, ...OPTS, clock, ttlSecs: 3600 });
  await (await log.lane('upstream')).append({ body: Buffer.from('x') });
  clock.advance(1_800_000);
  await log.close();
  clock.reboot({ wallMs: Date.UTC(1970, 0, 1), synced: false }); // a Pi without RTC boots in 1970
  log = await RingLog.open({ dir, ...OPTS, clock, ttlSecs: 3600 });
  const lane = await log.lane('upstream');
  t.equal((await lane.read(1)).length, 1, 'after the reboot the record is still there');
  clock.stepWall(Date.UTC(2026, 5, 3) - clock.wallMs()); // NTP syncs: the wall clock jumps 56 years
  t.equal((await lane.read(1)).length, 1, 'the NTP step does not expire it');
  clock.advance(1_801_000);
  t.equal((await lane.read(1)).length, 0, 'it expires after the rest of its TTL of running time');
  await log.close();
});

t.test('TTL across a reboot with synced clocks on both sides: real downtime counts', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock({ wallMs: Date.UTC(2026, 5, 1), synced: true });
  let log = await RingLog.open({ dir, ...OPTS, clock, ttlSecs: 3600 });
  await (await log.lane('upstream')).append({ body: Buffer.from('x') });
  await log.close();
  const shutdownWall = clock.wallMs();
  clock.reboot({ wallMs: shutdownWall + 10_000, synced: false }); // fake-hwclock: a little after shutdown
  log = await RingLog.open({ dir, ...OPTS, clock, ttlSecs: 3600 });
  const lane = await log.lane('upstream');
  t.equal((await lane.read(1)).length, 1, 'unsynced at boot: kept');
  clock.stepWall(2 * 3_600_000); // NTP: the board was really off for two hours
  clock.setSynced(true);
  await log.maintenancePass(); // what the retention timer runs: it credits the downtime
  t.equal((await lane.read(1)).length, 0, 'the known two hours of downtime expired it');
  await log.close();
});

t.test('settings applied live: TTL for new records, a lower quota enforced at once, bad values named', async (t) => {
  const dir = tempDir(t);
  const clock = new ManualClock();
  const log = await RingLog.open({ dir, ...OPTS, quotaBytes: 8 * SEG, clock, ttlSecs: 3600 });
  const lane = await log.lane('upstream');
  await Promise.all(Array.from({ length: 1500 }, () => lane.append({ body: Buffer.alloc(200) })));
  t.ok(bytesOnDisk(dir) > QUOTA, 'more than the new quota on disk');
  await log.applySettings({ ttlSecs: 10, quotaBytes: QUOTA });
  t.ok(bytesOnDisk(dir) <= QUOTA, `the lower quota holds once applied, before any write (${bytesOnDisk(dir)} B)`);
  t.ok(log.stats().droppedRecords > 0, 'the records it cost are counted as dropped');
  await lane.append({ body: Buffer.from('short-lived') });
  t.ok(bytesOnDisk(dir) <= QUOTA, 'and after the next write');
  await log.maintenancePass();
  t.ok(bytesOnDisk(dir) <= QUOTA, 'and after a retention pass');
  clock.advance(11_000);
  const left = await lane.read(1, { recordsMax: 5000 });
  t.notOk(
    left.some((r) => r.body.toString() === 'short-lived'),
    'the new default TTL applied to the new record',
  );
  t.ok(left.length > 0, 'older records keep the TTL they were stored with');
  t.ok(bytesOnDisk(dir) <= QUOTA, 'and after the read');
  t.throws(() => log.applySettings({ quotaBytes: 5 }), { code: 'INVALID', message: /"quotaBytes"/ });
  await log.close();
});
