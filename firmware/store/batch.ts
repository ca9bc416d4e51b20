import { encodeRecord, type EncodeInput } from './record.js';
import { INDEX_STRIDE_BYTES, type SegmentInfo } from './segment.js';

/** First allocation for a batch buffer; it doubles up to groupCommitBytesMax as records arrive. */
const BATCH_BUFFER_BYTES_INITIAL = 64 * 1024;
/** Committed batch buffers a lane keeps for reuse, so steady appending allocates nothing per batch. */
const BATCH_BUFFERS_POOLED_MAX = 2;

/** Resolves with `seq`: one record's seq for append, the call's last seq for appendBatch. */
export interface Waiter {
  seq: number;
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

/** Buffers of committed batches, handed to new ones. */
export class BufferPool {
  private readonly free: Buffer[] = [];

  take(minBytes: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= minBytes);
    if (i >= 0) return this.free.splice(i, 1)[0]!;
    return Buffer.allocUnsafe(Math.max(BATCH_BUFFER_BYTES_INITIAL, minBytes));
  }

  give(buf: Buffer): void {
    if (this.free.length < BATCH_BUFFERS_POOLED_MAX) this.free.push(buf);
  }
}

/**
 * Records appended to one lane since the last group commit began, already framed, plus the promises
 * waiting on them. Seqs inside a batch are consecutive.
 */
export class Batch {
  buf: Buffer;
  bytes = 0;
  firstSeq = 0;
  lastSeq = 0;
  records = 0;
  /** The batch must begin a new segment (set when the previous one would overflow). */
  rollBefore = false;
  /** Offset in the segment where this batch was written, once written. */
  segmentOffset = -1;
  segment: SegmentInfo | null = null;
  private readonly waiters: Waiter[] = [];
  /** Summary kept while adding, so a commit folds it into the segment without re-reading headers. */
  private maxExpiresAtStoreMs = 0;
  private neverExpires = false;
  private firstEnqueuedAtMs = 0;
  /** (seq, offset in batch) every INDEX_STRIDE_BYTES: candidates for the segment's sparse index. */
  private readonly indexCandidates: Array<[number, number]> = [];

  constructor(
    private readonly pool: BufferPool,
    bytesHint: number,
  ) {
    this.buf = pool.take(bytesHint);
  }

  add(rec: EncodeInput, totalBytes: number): void {
    if (this.bytes + totalBytes > this.buf.length) this.grow(this.bytes + totalBytes);
    encodeRecord(this.buf, this.bytes, rec);
    const last = this.indexCandidates[this.indexCandidates.length - 1];
    if (!last || this.bytes - last[1] >= INDEX_STRIDE_BYTES) this.indexCandidates.push([rec.seq, this.bytes]);
    this.bytes += totalBytes;
    if (this.records === 0) {
      this.firstSeq = rec.seq;
      this.firstEnqueuedAtMs = rec.enqueuedAtMs;
    }
    if (rec.expiresAtStoreMs === 0) this.neverExpires = true;
    else if (rec.expiresAtStoreMs > this.maxExpiresAtStoreMs) this.maxExpiresAtStoreMs = rec.expiresAtStoreMs;
    this.lastSeq = rec.seq;
    this.records++;
  }

  wait(waiter: Waiter): void {
    this.waiters.push(waiter);
  }

  private grow(needBytes: number): void {
    let size = this.buf.length * 2;
    while (size < needBytes) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.bytes);
    this.buf = next;
  }

  /** Folds the batch's records into the segment summary (seq range, expiry, sparse index). */
  foldInto(seg: SegmentInfo): void {
    if (this.records === 0) return;
    if (seg.records === 0) {
      seg.firstSeq = this.firstSeq;
      seg.firstEnqueuedAtMs = this.firstEnqueuedAtMs;
    }
    seg.records += this.records;
    seg.lastSeq = this.lastSeq;
    if (this.neverExpires) seg.neverExpires = true;
    if (this.maxExpiresAtStoreMs > seg.maxExpiresAtStoreMs) seg.maxExpiresAtStoreMs = this.maxExpiresAtStoreMs;
    for (const [seq, offsetInBatch] of this.indexCandidates) {
      const offset = this.segmentOffset + offsetInBatch;
      const last = seg.index[seg.index.length - 1];
      if (!last || offset - last[1] >= INDEX_STRIDE_BYTES) seg.index.push([seq, offset]);
    }
  }

  resolveAll(): void {
    for (const w of this.waiters) w.resolve(w.seq);
    this.waiters.length = 0;
    this.release();
  }

  rejectAll(err: Error): void {
    for (const w of this.waiters) w.reject(err);
    this.waiters.length = 0;
    this.release();
  }

  private release(): void {
    this.pool.give(this.buf);
    this.buf = Buffer.alloc(0);
  }
}
