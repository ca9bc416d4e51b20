import { bytesWithSeals, type Prepared } from './append.js';
import { Batch, BufferPool } from './batch.js';
import { StoreError } from './errors.js';
import type { LaneHost } from './lane-host.js';
import { SEAL_RECORD_BYTES } from './record.js';

/**
 * A lane's appends waiting for the commit loop: the batches records are framed into, and the bytes they
 * hold, bounded by "appendQueueBytesMax". The lane issues seqs; this keeps the batches and their sizes.
 */
export class LaneQueue {
  private readonly batches: Batch[] = [];
  private readonly buffers = new BufferPool();
  private queuedBytes = 0;
  /** Projected size of the active segment once every queued batch is written. */
  private tailBytes = 0;

  constructor(
    private readonly laneName: string,
    private readonly host: LaneHost,
  ) {}

  /**
   * Bounds the bytes waiting for a commit, and the quota under reject-new, for records of `sizes` more:
   * their bytes plus the seal record of each segment they fill (a roll writes one, see frame/writeBatch).
   */
  admit(sizes: number[]): void {
    const bytes = bytesWithSeals(sizes, this.tailBytes, this.host.opts.segmentBytes);
    if (this.queuedBytes + bytes > this.host.opts.appendQueueBytesMax) {
      const what = `lane "${this.laneName}": ${this.queuedBytes} bytes await commit, over "appendQueueBytesMax"`;
      throw new StoreError('FULL', what);
    }
    this.host.reserveAppend(bytes);
  }

  /** Frames record `seq` into the open batch (opening a new one at a segment or batch boundary). */
  frame(p: Prepared, seq: number, wallMs: number, storeMs: number): Batch {
    const opts = this.host.opts;
    let batch = this.batches[this.batches.length - 1];
    const rollNeeded = this.tailBytes + p.total + SEAL_RECORD_BYTES > opts.segmentBytes;
    if (!batch || rollNeeded || batch.bytes + p.total > opts.groupCommitBytesMax) {
      batch = new Batch(this.buffers, p.total);
      if (rollNeeded) {
        batch.rollBefore = true;
        this.tailBytes = 0;
      }
      this.batches.push(batch);
    }
    const expiresAtStoreMs = p.ttlSecs === 0 ? 0 : storeMs + p.ttlSecs * 1000;
    batch.add({ seq, flags: 0, enqueuedAtMs: wallMs, expiresAtStoreMs, props: p.props, body: p.body }, p.total);
    this.tailBytes += p.total;
    this.queuedBytes += p.total;
    this.host.scheduleCommit();
    return batch;
  }

  hasQueued(): boolean {
    return this.batches.length > 0;
  }

  /** Takes the oldest batch for the commit loop; later appends open a new batch. */
  take(): Batch | undefined {
    const batch = this.batches.shift();
    if (batch) this.queuedBytes -= batch.bytes;
    return batch;
  }

  /** A new segment was created for `first` (already taken off the queue): it and all still queued follow. */
  rolled(first: Batch): void {
    this.tailBytes = first.bytes;
    for (const b of this.batches) this.tailBytes += b.bytes;
  }

  /** Rejects everything still queued (close without flush, or a fatal error). */
  rejectAll(err: Error): void {
    for (const b of this.batches.splice(0)) b.rejectAll(err);
    this.queuedBytes = 0;
  }
}
