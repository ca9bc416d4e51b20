import type { Clock } from '../clock.js';
import { StoreError } from './errors.js';
import type { StoreFs } from './fs.js';
import type { DamageReport, QuotaPolicy, SyncMode } from './types.js';

const MiB = 1024 * 1024;

export interface RingLogOptions {
  /** Data directory; created if missing. */
  dir: string;
  /** Size at which a segment file is sealed and a new one started, bytes. Default 16 MiB. */
  segmentBytes?: number;
  /** Largest record (32-byte header + properties + body), bytes. Default 264 KiB (RECORD_BYTES_MAX_DEFAULT). */
  recordBytesMax?: number;
  /** Bytes on disk the whole log may use (segments + checkpoint), bytes. Default 1 GiB. */
  quotaBytes?: number;
  /** What a full log does: delete the oldest segment, or fail appends with FULL. Default drop-oldest. */
  quotaPolicy?: QuotaPolicy;
  /** Default time to live per record, seconds; 0 = never expire. Default 7200. */
  ttlSecs?: number;
  /**
   * always: append resolves after fdatasync (group commit); interval: after write, synced every syncIntervalMs;
   * none: never synced. interval and none are for tests and benchmarks only (board.json refuses them).
   */
  syncMode?: SyncMode;
  /** interval mode: the sync period; always mode: unused (a batch starts as soon as the previous sync ends). ms. Default 10. */
  syncIntervalMs?: number;
  /** Most bytes one group commit writes before its fdatasync, bytes. Default 4 MiB, or segmentBytes / 2 if less. */
  groupCommitBytesMax?: number;
  /** Appended bytes waiting for a commit before append refuses with FULL, bytes. Default 64 MiB. */
  appendQueueBytesMax?: number;
  /** Shortest gap between two checkpoint writes, ms. Default 1000. */
  checkpointIntervalMs?: number;
  /** Acknowledged records that trigger a checkpoint before checkpointIntervalMs is up, records. Default 2000. */
  checkpointAckRecords?: number;
  /** How often expired or fully acknowledged segments are looked for, ms. Default 1000. */
  retentionIntervalMs?: number;
  /** Open for inspection only: no lock, no truncation, no writes. */
  readOnly?: boolean;
  fs?: StoreFs;
  clock?: Clock;
  /** Called for each damaged region found (at open or while reading). */
  onDamage?: (report: DamageReport) => void;
}

export type ResolvedOptions = Required<Omit<RingLogOptions, 'fs' | 'clock' | 'onDamage'>>;

/**
 * Default record limit: a hub message at IoT Hub's 256 KiB (topic + payload, the hub's messageBytesMax) plus
 * room for the properties the hub stores with it (the topic's property bag, device and module ids, times)
 * and the record header. At exactly 256 KiB, a message the hub had accepted could not be stored.
 */
export const RECORD_BYTES_MAX_DEFAULT = 264 * 1024;

export const DEFAULTS: Omit<ResolvedOptions, 'dir'> = {
  segmentBytes: 16 * MiB,
  recordBytesMax: RECORD_BYTES_MAX_DEFAULT,
  quotaBytes: 1024 * MiB,
  quotaPolicy: 'drop-oldest',
  ttlSecs: 7200,
  syncMode: 'always',
  syncIntervalMs: 10,
  groupCommitBytesMax: 4 * MiB,
  appendQueueBytesMax: 64 * MiB,
  checkpointIntervalMs: 1000,
  checkpointAckRecords: 2000,
  retentionIntervalMs: 1000,
  readOnly: false,
};

function invalid(message: string): StoreError {
  return new StoreError('INVALID', message);
}

function checkRange(name: string, value: number, min: number, max: number, unit: string): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw invalid(`"${name}" must be an integer between ${min} and ${max} ${unit}, got ${value}`);
  }
}

/** Validates options with errors that name the option, the way an operator reads them. */
export function resolveOptions(opts: RingLogOptions): ResolvedOptions {
  if (typeof opts.dir !== 'string' || opts.dir.length === 0) throw invalid('"dir" must be a non-empty path');
  const o: ResolvedOptions = { ...DEFAULTS, ...stripUndefined(opts) } as ResolvedOptions;
  // The library's own bounds, wider than board.json's (firmware/config/schema-board.ts): tests and the
  // power-cut simulator roll 4 KiB segments, and lanes that must never expire use a TTL of 0. An operator
  // range must lie inside these (test/firmware/config/storage-ranges.test.ts).
  checkRange('segmentBytes', o.segmentBytes, 4096, 1024 * MiB, 'bytes');
  // A commit must fit half a segment; the default shrinks with small segments (board.json allows 1 MiB and has
  // no group-commit option, so a fixed 4 MiB default refused every segment under 8 MiB at start).
  if (opts.groupCommitBytesMax === undefined) {
    o.groupCommitBytesMax = Math.min(DEFAULTS.groupCommitBytesMax, Math.floor(o.segmentBytes / 2));
  }
  checkRange('recordBytesMax', o.recordBytesMax, 1024, Math.min(16 * MiB, o.segmentBytes / 4), 'bytes');
  checkRange('quotaBytes', o.quotaBytes, 4 * o.segmentBytes, Number.MAX_SAFE_INTEGER, 'bytes (at least 4 segments)');
  checkRange('ttlSecs', o.ttlSecs, 0, 10 * 365 * 86_400, 'seconds');
  checkRange('syncIntervalMs', o.syncIntervalMs, 1, 60_000, 'ms');
  checkRange('groupCommitBytesMax', o.groupCommitBytesMax, o.recordBytesMax, o.segmentBytes / 2, 'bytes');
  checkRange('appendQueueBytesMax', o.appendQueueBytesMax, o.groupCommitBytesMax, 1024 * MiB, 'bytes');
  checkRange('checkpointIntervalMs', o.checkpointIntervalMs, 1, 3_600_000, 'ms');
  checkRange('checkpointAckRecords', o.checkpointAckRecords, 1, 10_000_000, 'records');
  checkRange('retentionIntervalMs', o.retentionIntervalMs, 10, 3_600_000, 'ms');
  if (o.quotaPolicy !== 'drop-oldest' && o.quotaPolicy !== 'reject-new') {
    throw invalid(`"quotaPolicy" must be "drop-oldest" or "reject-new", got ${JSON.stringify(o.quotaPolicy)}`);
  }
  if (o.syncMode !== 'always' && o.syncMode !== 'interval' && o.syncMode !== 'none') {
    throw invalid(`"syncMode" must be "always", "interval" or "none", got ${JSON.stringify(o.syncMode)}`);
  }
  return o;
}

function stripUndefined<T extends object>(obj: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(obj)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
