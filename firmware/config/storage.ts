import { RECORD_BYTES_MAX_DEFAULT } from '../store/options.js';
import type { ConfigNode } from './node.js';
import { fieldsOf, integerOption } from './schema.js';

/** Binary units, as the storage sizes are documented. */
const MIB_BYTES = 1024 * 1024;
/** A unit, for the quota's range. */
const GIB_BYTES = 1024 * MIB_BYTES;

/** The quota must hold several segments, so dropping the oldest whole segment frees a small share of it. */
export const STORAGE_QUOTA_SEGMENTS_MIN = 4;

/** A record must fit its 32-byte header and some payload; four must fit a segment so rolls stay rare. */
const RECORD_BYTES_MIN = 1024;

export type QuotaPolicy = 'drop-oldest' | 'reject-new';
export type SyncMode = 'always' | 'interval' | 'none';

/** The `storage` section of board.json: the ring log on local disk (see firmware/store). */
export interface StorageConfig {
  /** Directory holding the log segments and checkpoints; relative paths are resolved against board.json. Default "./data". */
  dataDir: string;
  /** Size of one log segment file in bytes. Default 16 MiB, between 1 MiB and 1 GiB. */
  segmentBytes: number;
  /** Largest single record in bytes. Default 264 KiB (RECORD_BYTES_MAX_DEFAULT), 1 KiB to segmentBytes / 4. */
  recordBytesMax: number;
  /** Disk space the log may use, in bytes. Default 1 GiB; at least 4 × segmentBytes. */
  quotaBytes: number;
  /** What happens when the quota is reached. Default "drop-oldest". */
  quotaPolicy: QuotaPolicy;
  /** Age after which an unsent record is dropped, in seconds. Default 7200. */
  ttlSecs: number;
  /** When appended records are fsynced: "always" acknowledges only durable records (group commit). Default "always". */
  syncMode: SyncMode;
  /** Sync period for syncMode "interval", in milliseconds. Default 10. */
  syncIntervalMs: number;
  /** How often the read cursor checkpoint is persisted, in milliseconds. Default 1000. */
  checkpointIntervalMs: number;
}

export const STORAGE_DEFAULTS: Readonly<StorageConfig> = {
  dataDir: './data',
  segmentBytes: 16 * MIB_BYTES,
  recordBytesMax: RECORD_BYTES_MAX_DEFAULT,
  quotaBytes: GIB_BYTES,
  quotaPolicy: 'drop-oldest',
  ttlSecs: 7200,
  syncMode: 'always',
  syncIntervalMs: 10,
  checkpointIntervalMs: 1000,
};

/** 1 TiB: larger quotas are beyond any SD card or eMMC these boards carry. */
export const STORAGE_QUOTA_BYTES_MAX = 1024 * GIB_BYTES;

export function parseStorage(node: ConfigNode): StorageConfig {
  if (node.missing) return { ...STORAGE_DEFAULTS };
  node.keys(fieldsOf('storage'));
  const d = STORAGE_DEFAULTS;
  // Below 1 MiB the per-segment overhead dominates; above 1 GiB a quota drop (whole segments) throws away
  // too much at once (the range is in the schema table).
  const segmentBytes = integerOption(node.field('segmentBytes'), 'storage.segmentBytes');
  return {
    dataDir: node.field('dataDir').string({ default: d.dataDir }),
    segmentBytes,
    recordBytesMax: node.field('recordBytesMax').integer({
      min: RECORD_BYTES_MIN,
      max: segmentBytes / 4,
      unit: 'bytes, at most segmentBytes / 4',
      default: Math.min(d.recordBytesMax, segmentBytes / 4),
    }),
    quotaBytes: node.field('quotaBytes').integer({
      min: STORAGE_QUOTA_SEGMENTS_MIN * segmentBytes,
      max: STORAGE_QUOTA_BYTES_MAX,
      unit: `bytes, at least ${STORAGE_QUOTA_SEGMENTS_MIN} × segmentBytes`,
      default: d.quotaBytes,
    }),
    quotaPolicy: node.field('quotaPolicy').oneOf(['drop-oldest', 'reject-new'], { default: d.quotaPolicy }),
    ttlSecs: integerOption(node.field('ttlSecs'), 'storage.ttlSecs'),
    // "interval" and "none" acknowledge records before they are durable: tests and benchmarks set them in code.
    syncMode: node.field('syncMode').oneOf(['always'], { default: d.syncMode }),
    syncIntervalMs: integerOption(node.field('syncIntervalMs'), 'storage.syncIntervalMs'),
    checkpointIntervalMs: integerOption(node.field('checkpointIntervalMs'), 'storage.checkpointIntervalMs'),
  };
}
