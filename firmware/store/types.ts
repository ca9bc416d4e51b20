/** Public shapes of the ring log. `store` knows nothing of MQTT: properties are plain strings. */

/** What a producer hands to `append`. */
export interface AppendInput {
  /** Message body; at most `recordBytesMax` including the header and properties. */
  body: Buffer;
  /** Message properties (content type, application properties); keys ≤ 255 B, values ≤ 65,535 B. */
  properties?: Record<string, string>;
  /** Time to live in seconds; default the log's `ttlSecs`. 0 means the record never expires. */
  ttlSecs?: number;
}

/** What a reader gets back. */
export interface StoredRecord {
  /** Per-lane sequence number: strictly increasing, stable across restarts, gaps allowed. */
  seq: number;
  /** Wall-clock time at enqueue (ms since epoch), as the gateway's clock read it then. */
  enqueuedAtMs: number;
  /** Store-clock expiry (ms), 0 when the record never expires; compare with `RingLog.storeNowMs()`. */
  expiresAtStoreMs: number;
  properties: Record<string, string>;
  body: Buffer;
}

export type SyncMode = 'always' | 'interval' | 'none';
export type QuotaPolicy = 'drop-oldest' | 'reject-new';

/** A contiguous region that failed its CRC and was skipped. */
export interface DamageReport {
  lane: string;
  segment: string;
  /** Byte offset of the first bad byte in the segment file. */
  fromByte: number;
  /** Byte offset just past the skipped region. */
  toByte: number;
  /** 'torn-tail' (truncated at open) or 'corrupt' (skipped, data after it kept). */
  kind: 'torn-tail' | 'corrupt';
}

export interface LaneStats {
  lane: string;
  /** Records appended but not yet acknowledged (an upper bound: expired/dropped ones count until skipped). */
  pendingRecords: number;
  pendingBytes: number;
  /** Age in ms of the oldest unacknowledged record, on the wall clock (now minus enqueue time); 0 when none. */
  oldestPendingAgeMs: number;
  ackedSeq: number;
  lastSeq: number;
  segments: number;
}

export interface LogStats {
  lanes: LaneStats[];
  expiredRecords: number;
  droppedRecords: number;
  corruptRecords: number;
  corruptBytes: number;
  segmentCount: number;
  bytesOnDisk: number;
  quotaBytes: number;
  lastSyncLatencyMs: number;
  syncCount: number;
}
