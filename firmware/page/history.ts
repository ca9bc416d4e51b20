import { open, type FileHandle } from 'node:fs/promises';
import type { PageReport } from './host.js';

/** Samples kept for the backlog chart at one a second: the last 10 minutes (a site visit's worth). */
export const HISTORY_SAMPLES_MAX = 600;
/** One sample a minute for the day before: 24 hours, so a technician sees how last night's outage went. */
export const HISTORY_DAY_SAMPLES_MAX = 1_440;
/** A unit: the day's chart keeps one sample per minute. */
const MINUTE_MS = 60_000;
/** A sample stamped further ahead than this came from a clock that has since been set back: it is dropped. */
const FUTURE_SLACK_MS = MINUTE_MS;

/**
 * The day's samples on disk: a fixed header, then HISTORY_DAY_SAMPLES_MAX slots of four float64 (wall ms,
 * records, bytes, drain per second), the slot picked by the minute of the day. One 32-byte write a minute in
 * place, never fsynced: a power cut may cost the last minutes of a chart, and the file never grows, so the
 * flash sees one block rewrite a minute and nothing else.
 */
const FILE_MAGIC = Buffer.from('OPHIST01');
/** One day slot: four float64 (wall ms, records, bytes, drain per second). */
const SLOT_BYTES = 32;
/** The file's fixed size, bytes (about 45 KiB): it never grows. */
export const HISTORY_FILE_BYTES = FILE_MAGIC.length + HISTORY_DAY_SAMPLES_MAX * SLOT_BYTES;

export interface HistorySample {
  atWallMs: number;
  records: number;
  bytes: number;
  drainPerSec: number;
}

function slotOf(atWallMs: number): number {
  return Math.floor(atWallMs / MINUTE_MS) % HISTORY_DAY_SAMPLES_MAX;
}

function encode(sample: HistorySample): Buffer {
  const slot = Buffer.alloc(SLOT_BYTES);
  [sample.atWallMs, sample.records, sample.bytes, sample.drainPerSec].forEach((v, i) => slot.writeDoubleLE(v, i * 8));
  return slot;
}

function decode(slot: Buffer): HistorySample | null {
  const [atWallMs, records, bytes, drainPerSec] = [0, 1, 2, 3].map((i) => slot.readDoubleLE(i * 8)) as [
    number,
    number,
    number,
    number,
  ];
  const sane = [atWallMs, records, bytes, drainPerSec].every((v) => Number.isFinite(v) && v >= 0);
  return sane && atWallMs > 0 ? { atWallMs, records, bytes, drainPerSec } : null;
}

/** What a history file held: the day's samples in time order, or why it was not usable. */
export interface LoadedHistory {
  samples: HistorySample[];
  problem: string | null;
}

/**
 * Reads the day's samples, keeping those of the last 24 hours by the wall clock now. A missing file is a first
 * start; a file of the wrong size or magic (another program's, a torn first write) is reported and overwritten.
 */
export async function loadHistoryFile(path: string, nowWallMs = Date.now()): Promise<LoadedHistory> {
  let data: Buffer;
  try {
    const handle = await open(path, 'r');
    try {
      data = Buffer.alloc(HISTORY_FILE_BYTES + 1);
      const { bytesRead } = await handle.read(data, 0, data.length, 0);
      data = data.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { samples: [], problem: code === 'ENOENT' ? null : `${path}: ${(err as Error).message}` };
  }
  if (data.length !== HISTORY_FILE_BYTES || !data.subarray(0, FILE_MAGIC.length).equals(FILE_MAGIC)) {
    return { samples: [], problem: `${path}: not a page history file (${data.length} bytes); starting a new one` };
  }
  const samples: HistorySample[] = [];
  for (let slot = 0; slot < HISTORY_DAY_SAMPLES_MAX; slot += 1) {
    const at = FILE_MAGIC.length + slot * SLOT_BYTES;
    const sample = decode(data.subarray(at, at + SLOT_BYTES));
    if (sample === null || slotOf(sample.atWallMs) !== slot) continue;
    const ageMs = nowWallMs - sample.atWallMs;
    if (ageMs < HISTORY_DAY_SAMPLES_MAX * MINUTE_MS && ageMs > -FUTURE_SLACK_MS) samples.push(sample);
  }
  return { samples: samples.sort((a, b) => a.atWallMs - b.atWallMs), problem: null };
}

/** The writing end: slots written in place, the file created at its full size on the first write. */
export class HistoryFile {
  private handle: FileHandle | null = null;
  private writing: Promise<void> = Promise.resolve();
  /** Writes that failed (a full or read-only disk): the chart then keeps its day in memory only. */
  failures = 0;
  lastError: string | null = null;

  constructor(readonly path: string) {}

  write(sample: HistorySample): void {
    this.writing = this.writing
      .then(() => this.put(sample))
      .catch((err: unknown) => {
        this.failures += 1;
        this.lastError = `${this.path}: ${(err as Error).message}`;
      });
  }

  private async put(sample: HistorySample): Promise<void> {
    if (this.handle === null) {
      const handle = await open(this.path, 'a+');
      await handle.close();
      this.handle = await open(this.path, 'r+');
      const { size } = await this.handle.stat();
      if (size !== HISTORY_FILE_BYTES) {
        await this.handle.truncate(0);
        await this.handle.write(Buffer.concat([FILE_MAGIC, Buffer.alloc(HISTORY_FILE_BYTES - FILE_MAGIC.length)]), 0);
      }
    }
    await this.handle.write(encode(sample), 0, SLOT_BYTES, FILE_MAGIC.length + slotOf(sample.atWallMs) * SLOT_BYTES);
  }

  async close(): Promise<void> {
    await this.writing;
    await this.handle?.close();
    this.handle = null;
  }
}

/**
 * The backlog chart's samples: a bounded ring at one a second for the last minutes, and one a minute for the
 * day before, which a HistoryFile keeps across restarts.
 */
export class BacklogHistory {
  private readonly recent: HistorySample[] = [];
  private readonly day: HistorySample[];

  constructor(
    daySamples: HistorySample[] = [],
    private readonly file: HistoryFile | null = null,
  ) {
    this.day = daySamples.slice(-HISTORY_DAY_SAMPLES_MAX);
  }

  add(report: PageReport, atWallMs = Date.now()): void {
    const records = report.lanes.reduce((n, l) => n + l.records, 0);
    const bytes = report.lanes.reduce((n, l) => n + l.bytes, 0);
    const sample = { atWallMs, records, bytes, drainPerSec: report.drain.ratePerSec };
    // A clock set back (no RTC until NTP) leaves later-stamped samples ahead of this one: they go.
    while (this.recent.length > 0 && this.recent.at(-1)!.atWallMs >= atWallMs) this.recent.pop();
    this.recent.push(sample);
    if (this.recent.length > HISTORY_SAMPLES_MAX) this.recent.shift();
    const last = this.day.at(-1);
    if (last !== undefined && Math.floor(last.atWallMs / MINUTE_MS) === Math.floor(atWallMs / MINUTE_MS)) return;
    while (this.day.length > 0 && this.day.at(-1)!.atWallMs > atWallMs) this.day.pop();
    this.day.push(sample);
    if (this.day.length > HISTORY_DAY_SAMPLES_MAX) this.day.shift();
    this.file?.write(sample);
  }

  /** The day's minutes up to where the seconds begin, then the seconds: one series in time order. */
  list(): HistorySample[] {
    const firstRecent = this.recent[0]?.atWallMs ?? Infinity;
    return [...this.day.filter((s) => s.atWallMs < firstRecent), ...this.recent];
  }

  /** Failed writes of the history file, for the page's counters. */
  fileFailures(): number {
    return this.file?.failures ?? 0;
  }

  close(): Promise<void> {
    return this.file?.close() ?? Promise.resolve();
  }
}
