import { randomBytes } from 'node:crypto';
import { envInt, ioCounters, peakRssMb, sampleMemory } from './harness.js';

/** The workload every engine runs: the figures. */
export const BODY_BYTES = 256;
/** Records per append transaction (peers), per read and per ack (everyone). */
export const BATCH_RECORDS = 500;
/**
 * Appends awaiting durability at once, bounded like a real producer. In steady state one group commit
 * syncs while the next fills, so a commit carries about half the window. OUTPOST_BENCH_APPEND_WINDOW overrides.
 */
const APPEND_WINDOW_RECORDS_DEFAULT = 4096;
export const APPEND_WINDOW_RECORDS = envInt('OUTPOST_BENCH_APPEND_WINDOW', APPEND_WINDOW_RECORDS_DEFAULT);
/**
 * Batches of BATCH_RECORDS in flight at once: outpost's appendBatch calls and LevelDB's write batches
 * alike (LevelDB groups concurrent writers into one log write and sync, as outpost's group commit does),
 * so the ratio measures the engines, not a harness that waits for each batch. SQLite has one writer.
 */
export const APPEND_BATCH_CALLS_IN_FLIGHT = Math.max(1, Math.floor(APPEND_WINDOW_RECORDS / BATCH_RECORDS));
/** Time to live given to every record, seconds (the log's default); no record expires during a run. */
export const TTL_SECS = 7200;
/**
 * Distinct random bodies cycled through: random so LevelDB's Snappy compression gains nothing a real
 * sensor payload would not give it, and a pool (1 MiB) so making bodies costs no time inside the loop.
 */
const BODY_POOL_RECORDS = 4096;
const bodyPool = randomBytes(BODY_POOL_RECORDS * BODY_BYTES);

export function body(i: number): Buffer {
  const start = (i % BODY_POOL_RECORDS) * BODY_BYTES;
  return bodyPool.subarray(start, start + BODY_BYTES);
}

/** What one engine's child reports; rates in records/s, times in ms, sizes in bytes unless named. */
export interface EngineResult extends Record<string, number> {
  records: number;
  appendMs: number;
  drainMs: number;
  /** Time between the end of the drain and the data being gone (outpost: retention deleted the segments). */
  retireMs: number;
  appendPerSec: number;
  drainPerSec: number;
  writeBytes: number;
  cancelledWriteBytes: number;
  bytesPerRecord: number;
  rssMb: number;
  /** CPU time of the whole process (all threads: main, libuv pool, GC helpers) per record, µs. */
  appendCpuUsPerRecord: number;
  drainCpuUsPerRecord: number;
  heapTotalMbMax: number;
  arrayBuffersMbMax: number;
}

/** user + system CPU since `since`, µs. */
function cpuUsSince(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

/**
 * Times the life of `records` records in one engine: open, append (timed), drain (timed), retire and
 * close; /proc/self/io write_bytes covers all of it. `drain` returns how many records it saw in order.
 */
export async function measureLife(
  records: number,
  phases: {
    open: () => Promise<void>;
    append: () => Promise<void>;
    drain: () => Promise<number>;
    retire: () => Promise<void>;
    extra?: () => Record<string, number>;
  },
): Promise<EngineResult> {
  const io0 = ioCounters();
  const stopSampling = sampleMemory();
  await phases.open();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await phases.append();
  const t1 = performance.now();
  const appendCpuUs = cpuUsSince(cpu0);
  const cpu1 = process.cpuUsage();
  const drained = await phases.drain();
  const t2 = performance.now();
  const drainCpuUs = cpuUsSince(cpu1);
  if (drained !== records) throw new Error(`drained ${drained} records in order, expected ${records}`);
  const extra = phases.extra?.() ?? {};
  await phases.retire();
  const t3 = performance.now();
  const io1 = ioCounters();
  const writeBytes = io1.writeBytes - io0.writeBytes;
  return {
    records,
    appendMs: t1 - t0,
    drainMs: t2 - t1,
    retireMs: t3 - t2,
    appendPerSec: records / ((t1 - t0) / 1000),
    drainPerSec: records / ((t2 - t1) / 1000),
    writeBytes,
    cancelledWriteBytes: io1.cancelledWriteBytes - io0.cancelledWriteBytes,
    bytesPerRecord: writeBytes / records,
    rssMb: peakRssMb(),
    appendCpuUsPerRecord: appendCpuUs / records,
    drainCpuUsPerRecord: drainCpuUs / records,
    ...stopSampling(),
    ...extra,
  };
}

/** Checks that a drain sees ids 1..n strictly in order; returns the next expected id. */
export function expectNext(expected: number, got: number): number {
  if (got !== expected) throw new Error(`drain out of order: expected record ${expected}, got ${got}`);
  return expected + 1;
}
