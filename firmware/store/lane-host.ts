import type { StoreFs } from './fs.js';
import type { ResolvedOptions } from './options.js';
import type { DamageReport } from './types.js';

/** What a lane needs from the log that owns it. */
export interface LaneHost {
  readonly opts: ResolvedOptions;
  readonly fs: StoreFs;
  storeNowMs(): number;
  wallNowMs(): number;
  nextSegmentNo(): number;
  /** Reserves bytes for an append under reject-new; throws FULL when the quota would be exceeded. */
  reserveAppend(bytes: number): void;
  /** A seal record fits under the quota now (reject-new never goes over it, not even by a seal). */
  sealFits(): boolean;
  /** Gives back a reservation once its bytes are counted on disk, or failed. */
  releaseReserved(bytes: number): void;
  /** Bytes a segment file gained (+) or lost (-) on disk. */
  diskBytesChanged(delta: number): void;
  reportDamage(report: DamageReport): void;
  countExpired(records: number): void;
  countCorrupt(records: number, bytes: number): void;
  scheduleCommit(): void;
  markCheckpointDirty(records: number): void;
  assertOpen(): void;
}
