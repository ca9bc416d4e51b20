import { HEADER_BYTES, encodeRecord, type EncodeInput } from './record.js';
import type { SegmentInfo } from './segment.js';
import { noteRecord } from './segment.js';

/** First allocation for a batch buffer; it doubles up to groupCommitBytesMax as records arrive. */
const BATCH_BUFFER_BYTES_INITIAL = 64 * 1024;

interface Waiter {
  resolve: (seq: number) => void;
  reject: (err: Error) => void;
}

/**
 * Records appended to one lane since the last group commit began, already framed, plus the promises
 * waiting on them. Seqs inside a batch are consecutive, so waiter i belongs to firstSeq + i.
 */
export class Batch {
  buf: Buffer;
  bytes = 0;
  firstSeq = 0;
  lastSeq = 0;
  /** The batch must begin a new segment (set when the previous one would overflow). */
  rollBefore = false;
  /** Offset in the segment where this batch was written, once written. */
  segmentOffset = -1;
  segment: SegmentInfo | null = null;
  private readonly waiters: Waiter[] = [];

  constructor(bytesHint: number) {
    this.buf = Buffer.allocUnsafe(Math.max(BATCH_BUFFER_BYTES_INITIAL, bytesHint));
  }

  get records(): number {
    return this.waiters.length;
  }

  add(rec: EncodeInput, totalBytes: number, waiter: Waiter): void {
    if (this.bytes + totalBytes > this.buf.length) this.grow(this.bytes + totalBytes);
    encodeRecord(this.buf, this.bytes, rec);
    this.bytes += totalBytes;
    if (this.waiters.length === 0) this.firstSeq = rec.seq;
    this.lastSeq = rec.seq;
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
    let pos = 0;
    while (pos < this.bytes) {
      const propsBytes = this.buf.readUInt16LE(pos + 6);
      const bodyBytes = this.buf.readUInt32LE(pos + 8);
      const totalBytes = HEADER_BYTES + propsBytes + bodyBytes;
      noteRecord(
        seg,
        {
          seq: this.buf.readUInt32LE(pos + 16) * 0x1_0000_0000 + this.buf.readUInt32LE(pos + 12),
          flags: 0,
          propsBytes,
          bodyBytes,
          enqueuedAtMs: this.buf.readUIntLE(pos + 20, 6),
          expiresAtStoreMs: this.buf.readUIntLE(pos + 26, 6),
          totalBytes,
        },
        this.segmentOffset + pos,
      );
      pos += totalBytes;
    }
  }

  resolveAll(): void {
    for (let i = 0; i < this.waiters.length; i++) this.waiters[i]!.resolve(this.firstSeq + i);
    this.waiters.length = 0;
  }

  rejectAll(err: Error): void {
    for (const w of this.waiters) w.reject(err);
    this.waiters.length = 0;
  }
}
