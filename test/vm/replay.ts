// Crash states of the field VM's data disk, built from the log qemu's blklogwrites driver wrote (dm-log-writes
// format: a superblock sector, then per request one header sector and the request's data), the way CrashMonkey
// and dm-log-writes' replay-log build them: the disk as of a flush, plus a random subset of the writes sent
// after it, whole or torn at 512-byte sectors. Each state is checked on the host without a boot: e2fsck replays
// the ext4 journal on a copy, debugfs reads the gateway's data folder out, and the store's own recovery
// (RingLog.open) runs on it in this process. See test/vm/README.md.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, open, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { RingLog } from '../../firmware/store/log.js';
import type { DamageReport } from '../../firmware/store/types.js';

const run = promisify(execFile);

/** dm-log-writes entry flags (drivers/md/dm-log-writes.c). blklogwrites sets FLUSH and DISCARD, never FUA. */
export const LOG_FLUSH_FLAG = 1;
const LOG_FUA_FLAG = 2;
const LOG_DISCARD_FLAG = 4;
const LOG_FLAGS_ALL = 0xf;
const WRITE_LOG_MAGIC = 0x6a736677736872n;
/** e2fsck exit codes at or above this mean errors left uncorrected (e2fsck(8), EXIT CODE). */
export const E2FSCK_UNCORRECTED_CODE = 4;
/** One e2fsck or debugfs run on a data disk of tens of MiB; a loaded machine can take seconds. */
const TOOL_TIMEOUT_MS = 120_000;
/** Records one state's lane read returns at most; the workloads write a few thousand. */
const STATE_RECORDS_MAX = 1_000_000;

export interface LogEntry {
  index: number;
  /** First sector of the disk the request wrote (log sector size). */
  sector: number;
  sectors: number;
  flags: number;
  /** Byte offset of the request's data in the log file. */
  dataAt: number;
  /** Byte offset just past this entry in the log file. */
  endAt: number;
}

export interface WriteLog {
  path: string;
  sectorBytes: number;
  entries: LogEntry[];
}

/**
 * Reads a blklogwrites log. The superblock's entry count is rewritten at every flush, so entries after the last
 * flush are read on while their headers are valid and their data is in the file.
 */
export async function readWriteLog(path: string, diskSectors: number): Promise<WriteLog> {
  const file = await open(path, 'r');
  try {
    const size = (await file.stat()).size;
    const head = Buffer.alloc(32);
    await file.read(head, 0, 32, 0);
    if (head.readBigUInt64LE(0) !== WRITE_LOG_MAGIC) throw new Error(`${path}: not a dm-log-writes log (bad magic)`);
    const counted = Number(head.readBigUInt64LE(16));
    const sectorBytes = head.readUInt32LE(24);
    const entries: LogEntry[] = [];
    let at = sectorBytes;
    while (at + sectorBytes <= size) {
      await file.read(head, 0, 32, at);
      const sector = Number(head.readBigUInt64LE(0));
      const sectors = Number(head.readBigUInt64LE(8));
      const flags = Number(head.readBigUInt64LE(16));
      const dataBytes = flags & LOG_DISCARD_FLAG ? 0 : sectors * sectorBytes;
      const endAt = at + sectorBytes + dataBytes;
      const plausible =
        (flags & ~LOG_FLAGS_ALL) === 0 &&
        sector + sectors <= diskSectors &&
        endAt <= size &&
        (sectors > 0 || (flags & LOG_FLUSH_FLAG) !== 0);
      if (!plausible) {
        if (entries.length < counted) throw new Error(`${path}: entry ${entries.length} at byte ${at} is invalid`);
        break;
      }
      entries.push({ index: entries.length, sector, sectors, flags, dataAt: at + sectorBytes, endAt });
      at = endAt;
    }
    return { path, sectorBytes, entries };
  } finally {
    await file.close();
  }
}

export function isFlush(e: LogEntry): boolean {
  return (e.flags & (LOG_FLUSH_FLAG | LOG_FUA_FLAG)) !== 0;
}

export interface CrashState {
  name: string;
  /** Entries [0, prefix) are on the disk; entry prefix - 1 is a flush (or prefix is 0). */
  prefix: number;
  /** Writes after that flush that reached the disk too: whole, or only the listed sectors (a torn write). */
  extra: Array<{ entry: number; sectors: number[] | 'all' }>;
}

/** A small deterministic generator (mulberry32), so a failing state can be built again from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Picks `count` states among the flushes logged from `fromByte` (the workload's start) to `toByte`: about
 * half the disk as of a flush, half a flush plus a random subset of the writes up to the next flush, each kept
 * whole or torn (a random subset of its 512-byte sectors).
 */
export function planStates(
  log: WriteLog,
  count: number,
  fromByte: number,
  seed: number,
  toByte = Infinity,
): CrashState[] {
  const random = rng(seed);
  const flushes = log.entries.filter((e) => isFlush(e) && e.endAt >= fromByte && e.endAt <= toByte).map((e) => e.index);
  if (flushes.length === 0) return [];
  const states: CrashState[] = [];
  for (let i = 0; i < count; i++) {
    const flush = flushes[Math.floor((i * flushes.length) / count)]!;
    const prefix = flush + 1;
    const after: number[] = [];
    for (let e = prefix; e < log.entries.length && !isFlush(log.entries[e]!); e++) after.push(e);
    if (i % 2 === 0 || after.length === 0) {
      states.push({ name: `flush@${flush}`, prefix, extra: [] });
      continue;
    }
    const extra: CrashState['extra'] = [];
    for (const entry of after) {
      if (random() < 0.5) continue;
      const n = log.entries[entry]!.sectors;
      if (random() < 0.5 || n < 2) extra.push({ entry, sectors: 'all' });
      else extra.push({ entry, sectors: [...Array(n).keys()].filter(() => random() < 0.5) });
    }
    const torn = extra.filter((x) => x.sectors !== 'all').length;
    states.push({ name: `flush@${flush}+${extra.length}of${after.length}(torn ${torn})`, prefix, extra });
  }
  return states.sort((a, b) => a.prefix - b.prefix);
}

/** Builds the states in log order on one advancing copy of the base disk, so each write is applied once. */
export class StateBuilder {
  private applied = 0;
  private constructor(
    private readonly log: WriteLog,
    private readonly logFile: FileHandle,
    private readonly prefixPath: string,
    private readonly prefixFile: FileHandle,
  ) {}

  static async start(log: WriteLog, basePath: string, workDir: string): Promise<StateBuilder> {
    const prefixPath = join(workDir, 'prefix.img');
    await copyFile(basePath, prefixPath);
    return new StateBuilder(log, await open(log.path, 'r'), prefixPath, await open(prefixPath, 'r+'));
  }

  /** Writes the state to `out`; states must come in increasing `prefix` order. */
  async build(state: CrashState, out: string): Promise<void> {
    if (state.prefix < this.applied) throw new Error(`states out of order: ${state.prefix} after ${this.applied}`);
    for (; this.applied < state.prefix; this.applied++) {
      await this.apply(this.prefixFile, this.log.entries[this.applied]!, 'all');
    }
    await this.prefixFile.datasync();
    await copyFile(this.prefixPath, out);
    const target = await open(out, 'r+');
    try {
      for (const x of state.extra) await this.apply(target, this.log.entries[x.entry]!, x.sectors);
    } finally {
      await target.close();
    }
  }

  async close(): Promise<void> {
    await this.logFile.close();
    await this.prefixFile.close();
  }

  private async apply(target: FileHandle, e: LogEntry, sectors: number[] | 'all'): Promise<void> {
    if (e.sectors === 0 || (e.flags & LOG_DISCARD_FLAG) !== 0) return;
    const bytes = this.log.sectorBytes;
    const data = Buffer.alloc(e.sectors * bytes);
    await this.logFile.read(data, 0, data.length, e.dataAt);
    if (sectors === 'all') {
      await target.write(data, 0, data.length, e.sector * bytes);
      return;
    }
    for (const s of sectors) await target.write(data, s * bytes, bytes, (e.sector + s) * bytes);
  }
}

export interface Recovered {
  /** e2fsck -fy's exit code (0 clean, 1 corrected; 4 or more: errors left). */
  fsckCode: number;
  /** The gateway's data folder existed on the disk in this state. */
  dataDirFound: boolean;
  /** The store opened; else the error. */
  openError?: string;
  /** Record bodies of the upstream lane, in stored order. */
  bodies: string[];
  damage: DamageReport[];
}

export interface StoreShape {
  segmentBytes: number;
  recordBytesMax: number;
}

/**
 * e2fsck's journal replay and repair on the state image, its `dataDir` (a path inside the data disk) read out with
 * debugfs, then the store's recovery as the gateway runs it at start: open read-write (a torn tail is truncated)
 * and read the upstream lane.
 */
export async function recoverState(
  image: string,
  dataDir: string,
  workDir: string,
  shape: StoreShape,
): Promise<Recovered> {
  const fsckCode = await exitCode('e2fsck', ['-fy', image]);
  const out = join(workDir, 'rdump');
  await rm(out, { recursive: true, force: true });
  await mkdir(out);
  await run('debugfs', ['-R', `rdump ${dataDir} ${out}`, image], { timeout: TOOL_TIMEOUT_MS });
  const dir = join(out, dataDir.split('/').pop()!);
  const recovered: Recovered = { fsckCode, dataDirFound: existsSync(dir), bodies: [], damage: [] };
  if (!recovered.dataDirFound) return recovered;
  try {
    const log = await RingLog.open({
      dir,
      ...shape,
      quotaBytes: Number.MAX_SAFE_INTEGER,
      onDamage: (d) => recovered.damage.push(d),
    });
    try {
      const lane = log.lanes.get('upstream');
      for (let next = 1; lane;) {
        const recs = await lane.read(next, { recordsMax: 1000 });
        if (recs.length === 0 || recovered.bodies.length > STATE_RECORDS_MAX) break;
        for (const r of recs) recovered.bodies.push(r.body.toString('utf8'));
        next = recs[recs.length - 1]!.seq + 1;
      }
    } finally {
      await log.close();
    }
  } catch (err) {
    recovered.openError = (err as Error).message;
  }
  return recovered;
}

async function exitCode(cmd: string, args: string[]): Promise<number> {
  try {
    await run(cmd, args, { timeout: TOOL_TIMEOUT_MS });
    return 0;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'number') return code;
    throw err;
  }
}
