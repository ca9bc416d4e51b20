// outpost's ring log under the store workload, plus the 1 GiB crash-and-reopen phases.
import { nodeFs, type StoreFile, type StoreFs } from '../firmware/store/fs.js';
import type { Lane } from '../firmware/store/lane.js';
import { RingLog } from '../firmware/store/log.js';
import { peakRssMb, sampleMemory, send } from './harness.js';
import {
  APPEND_BATCH_CALLS_IN_FLIGHT,
  APPEND_WINDOW_RECORDS,
  BATCH_RECORDS,
  TTL_SECS,
  body,
  expectNext,
  measureLife,
  type EngineResult,
} from './store-workload.js';

const MiB = 1024 * 1024;
/** How long the drained log may take to delete its segments on its own (checkpoint timer, then sweep), ms. */
const RETIRE_WAIT_MS_MAX = 10_000;
const RETIRE_POLL_MS = 20;
/** Appends the filler keeps making after reporting, so the SIGKILL lands in the middle of writes. */
const FILL_EXTRA_RECORDS_MAX = 200_000;
/** Header of every record in outpost's framing (firmware/store/record.ts), bytes. */
const RECORD_HEADER_BYTES = 32;

/** Quota large enough that nothing is dropped: the benchmark measures drain, not drop-oldest. */
function quotaFor(records: number): number {
  return Math.max(1024 * MiB, Math.ceil((records * (RECORD_HEADER_BYTES + 256) * 2) / MiB) * MiB);
}

/** Appends records [from, to) with at most APPEND_WINDOW_RECORDS unresolved appends at a time. */
async function appendRange(lane: Lane, from: number, to: number): Promise<void> {
  const window: Array<Promise<number> | undefined> = new Array(APPEND_WINDOW_RECORDS);
  for (let i = from; i < to; i++) {
    const slot = i % APPEND_WINDOW_RECORDS;
    if (window[slot]) await window[slot];
    window[slot] = lane.append({ body: body(i), ttlSecs: TTL_SECS });
  }
  await Promise.all(window);
}

/** Appends records [from, to) in appendBatch calls of BATCH_RECORDS, the same window of records in flight. */
async function appendRangeBatched(lane: Lane, from: number, to: number): Promise<void> {
  const window: Array<Promise<number> | undefined> = new Array(APPEND_BATCH_CALLS_IN_FLIGHT);
  let call = 0;
  for (let i = from; i < to; i += BATCH_RECORDS, call++) {
    const slot = call % APPEND_BATCH_CALLS_IN_FLIGHT;
    if (window[slot]) await window[slot];
    const inputs = [];
    for (let k = i; k < Math.min(to, i + BATCH_RECORDS); k++) inputs.push({ body: body(k), ttlSecs: TTL_SECS });
    window[slot] = lane.appendBatch(inputs);
  }
  await Promise.all(window);
}

/** How a producer hands records to the log: one append() per record, or appendBatch() of BATCH_RECORDS. */
export type AppendMode = 'single' | 'batch';

/** File operations and bytes by file kind: where the disk writes of a run come from. */
type FsTally = Record<
  'segmentWrites' | 'segmentBytes' | 'segmentSyncs' | 'checkpointWrites' | 'checkpointSyncs' | 'dirSyncs',
  number
>;

/** Wraps node's fs to count operations. Only with OUTPOST_BENCH_TRACE_FS=1 (it bypasses the LOCK file). */
function tracingFs(tally: FsTally): StoreFs {
  const wrap = (path: string, file: StoreFile): StoreFile => {
    const isSegment = path.endsWith('.seg');
    return {
      write: (buf, position) => {
        if (isSegment) (tally.segmentWrites++, (tally.segmentBytes += buf.length));
        else tally.checkpointWrites++;
        return file.write(buf, position);
      },
      datasync: () => {
        if (isSegment) tally.segmentSyncs++;
        else tally.checkpointSyncs++;
        return file.datasync();
      },
      read: (buf, position) => file.read(buf, position),
      truncate: (length) => file.truncate(length),
      size: () => file.size(),
      close: () => file.close(),
    };
  };
  return {
    ...nodeFs,
    open: async (path, mode, options) => wrap(path, await nodeFs.open(path, mode, options)),
    syncDir: (dir) => (tally.dirSyncs++, nodeFs.syncDir(dir)),
  };
}

/** The workload: durable appends through group commit, ordered drain with acks, retention deletes. */
export async function outpostLife(dir: string, records: number, mode: AppendMode = 'single'): Promise<EngineResult> {
  const tally: FsTally = {
    segmentWrites: 0,
    segmentBytes: 0,
    segmentSyncs: 0,
    checkpointWrites: 0,
    checkpointSyncs: 0,
    dirSyncs: 0,
  };
  const fs = process.env.OUTPOST_BENCH_TRACE_FS === '1' ? tracingFs(tally) : undefined;
  let log!: RingLog;
  let lane!: Lane;
  let appendSyncs = 0;
  let retiredBy = 0;
  return measureLife(records, {
    async open() {
      log = await RingLog.open({ dir, syncMode: 'always', quotaBytes: quotaFor(records), ...(fs ? { fs } : {}) });
      lane = await log.lane('upstream');
    },
    async append() {
      await (mode === 'batch' ? appendRangeBatched : appendRange)(lane, 0, records);
      appendSyncs = log.stats().syncCount;
    },
    async drain() {
      let next = 1;
      for (;;) {
        const batch = await lane.read(next, { recordsMax: BATCH_RECORDS });
        if (batch.length === 0) break;
        for (const rec of batch) next = expectNext(next, rec.seq);
        lane.ack(next - 1);
      }
      return next - 1;
    },
    extra: () => ({ appendSyncs, recordsPerSync: records / appendSyncs, ...(fs ? tally : {}) }),
    async retire() {
      // Acks mark the checkpoint dirty; its timer writes it and retention then deletes every segment
      // wholly acknowledged. Wait for that to happen on its own, then close (final checkpoint).
      const deadline = performance.now() + RETIRE_WAIT_MS_MAX;
      while (log.stats().segmentCount > 0 && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, RETIRE_POLL_MS));
      }
      retiredBy = log.stats().segmentCount === 0 ? 1 : 0;
      if (!retiredBy) await log.writeCheckpoint();
      await log.close();
      if (!retiredBy) throw new Error(`segments still on disk ${RETIRE_WAIT_MS_MAX} ms after the drain`);
    },
  });
}

/**
 * Fills a log to `bytes` with syncMode 'none' (speed; durability is not what this phase measures),
 * reports, then keeps appending until the parent SIGKILLs it: no seal, no final checkpoint, a torn tail.
 */
export async function fillThenWaitForKill(dir: string, bytes: number): Promise<never> {
  const stopSampling = sampleMemory();
  const log = await RingLog.open({ dir, syncMode: 'none', quotaBytes: 4 * bytes });
  const lane = await log.lane('upstream');
  const recordBytes = RECORD_HEADER_BYTES + body(0).length;
  const records = Math.ceil(bytes / recordBytes);
  const t0 = performance.now();
  await appendRangeBatched(lane, 0, records);
  const stats = log.stats();
  await send({
    filled: true,
    records,
    fillMs: performance.now() - t0,
    bytesOnDisk: stats.bytesOnDisk,
    segments: stats.segmentCount,
    rssMb: peakRssMb(),
    ...stopSampling(),
  });
  await appendRangeBatched(lane, records, records + FILL_EXTRA_RECORDS_MAX);
  return waitForKill();
}

/**
 * One timed open of the log a SIGKILL left behind, in a fresh process; reports, then waits to be killed
 * as well, so every open measured is an open after SIGKILL (stale lock, unsealed tail, no final checkpoint).
 */
export async function openThenWaitForKill(dir: string, bytes: number): Promise<never> {
  const t0 = performance.now();
  const log = await RingLog.open({ dir, syncMode: 'always', quotaBytes: 4 * bytes });
  const lane = await log.lane('upstream');
  const openMs = performance.now() - t0;
  const stats = log.stats();
  const pendingRecords = stats.lanes.find((l) => l.lane === lane.name)?.pendingRecords ?? 0;
  await send({
    opened: true,
    openMs,
    pendingRecords,
    bytesOnDisk: stats.bytesOnDisk,
    segments: stats.segmentCount,
    damaged: log.damage.length,
    rssMb: peakRssMb(),
  });
  return waitForKill();
}

function waitForKill(): Promise<never> {
  return new Promise<never>(() => setInterval(() => undefined, 60_000));
}

/** Opens the 1 GiB log and drains `records` of its backlog with acks: peak RSS with the backlog present. */
export async function drainBacklog(dir: string, bytes: number, records: number): Promise<Record<string, number>> {
  const stopSampling = sampleMemory();
  const log = await RingLog.open({ dir, syncMode: 'always', quotaBytes: 4 * bytes });
  const lane = await log.lane('upstream');
  const t0 = performance.now();
  let next = lane.ackedSeq() + 1;
  let drained = 0;
  while (drained < records) {
    const batch = await lane.read(next, { recordsMax: BATCH_RECORDS });
    if (batch.length === 0) break;
    drained += batch.length;
    next = batch[batch.length - 1]!.seq + 1;
    lane.ack(next - 1);
  }
  const drainMs = performance.now() - t0;
  const bytesOnDisk = log.stats().bytesOnDisk;
  await log.close();
  return { drained, drainPerSec: drained / (drainMs / 1000), bytesOnDisk, rssMb: peakRssMb(), ...stopSampling() };
}
