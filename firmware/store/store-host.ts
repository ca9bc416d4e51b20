import type { Batch } from './batch.js';
import type { StoreFs } from './fs.js';
import type { Lane } from './lane.js';
import type { ResolvedOptions } from './options.js';

export interface Counters {
  expiredRecords: number;
  droppedRecords: number;
  corruptRecords: number;
  corruptBytes: number;
  lastSyncLatencyMs: number;
  syncCount: number;
}

/**
 * What the commit loop and retention need of the log that owns them (RingLog has it all), as LaneHost is for
 * a lane: narrow, so neither imports the log that imports it.
 */
export interface StoreHost {
  readonly opts: ResolvedOptions;
  readonly fs: StoreFs;
  readonly counters: Counters;
  readonly lanes: ReadonlyMap<string, Lane>;
  readonly diskBytes: number;
  isClosing(): boolean;
  storeNowMs(): number;
  wallNowMs(): number;
  diskBytesChanged(delta: number): void;
  countExpired(records: number): void;
  exclusive<T>(fn: () => Promise<T>): Promise<T>;
  persistCheckpoint(): Promise<void>;
  durableStoreMs(): number;
}

/** The one retention call a commit makes: room for a batch under the quota, before it is written. */
export interface RoomMaker {
  makeRoom(lane: Lane, needBytes: number, written: Array<{ batch: Batch }>): Promise<void>;
}
