import type { SegmentInfo } from './segment.js';

/** Enqueue-time samples kept per lane for the oldest-pending statistic. */
const AGE_SAMPLES_MAX = 4096;

/** (seq, enqueue wall ms) of recently read records, a ring: the oldest-pending age without a seek. */
export class AgeRing {
  private readonly seqs = new Float64Array(AGE_SAMPLES_MAX);
  private readonly times = new Float64Array(AGE_SAMPLES_MAX);
  private head = 0;
  private count = 0;

  /** Called for every record the reader returns (two typed-array writes, no allocation). */
  sample(seq: number, enqueuedAtMs: number): void {
    const last = this.count > 0 ? this.seqs[(this.head + this.count - 1) % AGE_SAMPLES_MAX]! : 0;
    if (seq <= last) return;
    const slot = (this.head + this.count) % AGE_SAMPLES_MAX;
    this.seqs[slot] = seq;
    this.times[slot] = enqueuedAtMs;
    if (this.count < AGE_SAMPLES_MAX) this.count++;
    else this.head = (this.head + 1) % AGE_SAMPLES_MAX;
  }

  /**
   * Enqueue time of the oldest unacknowledged record, given the acked cursor and the first segment
   * holding one. Samples at or below the cursor are dropped on the way.
   */
  oldestPendingEnqueuedAtMs(acked: number, seg: SegmentInfo): number {
    while (this.count > 0 && this.seqs[this.head]! <= acked) {
      this.head = (this.head + 1) % AGE_SAMPLES_MAX;
      this.count--;
    }
    if (seg.firstSeq > acked) return seg.firstEnqueuedAtMs;
    // The first sample above the cursor is the oldest pending record when the reader saw it; if the
    // reader has not got that far, the segment's first record is the best bound we have without a read.
    return this.count > 0 && this.seqs[this.head]! <= seg.lastSeq ? this.times[this.head]! : seg.firstEnqueuedAtMs;
  }
}
