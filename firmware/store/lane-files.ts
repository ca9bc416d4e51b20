import assert from 'node:assert/strict';
import type { Batch } from './batch.js';
import { fromFsError } from './errors.js';
import type { StoreFile } from './fs.js';
import type { LaneHost } from './lane-host.js';
import { SEAL_RECORD_BYTES } from './record.js';
import type { SegmentInfo } from './segment.js';
import { createSegment, cutBackToDurable, sealSegment } from './segment-write.js';

/**
 * A lane's segment files: the list in segment order, the active segment's write handle, and when the next
 * write must roll. Only the Lane that owns it calls it, so every change to a lane's files has one home.
 */
export class LaneFiles {
  /** Ordered by segment number; the last one is the active segment unless it is sealed. */
  private readonly segs: SegmentInfo[] = [];
  private file: StoreFile | null = null;
  /** The next write must start a new segment (after an I/O error, a quota drop or a seal). */
  private rollNext = true;
  /** A segment was created since the last sync: its directory entry needs a directory fsync. */
  private dirSyncPending = false;

  constructor(
    private readonly laneName: string,
    private readonly dir: string,
    private readonly host: LaneHost,
  ) {}

  get segments(): readonly SegmentInfo[] {
    return this.segs;
  }

  get active(): SegmentInfo | undefined {
    const last = this.segs[this.segs.length - 1];
    return last && !last.sealed && !last.deleted ? last : undefined;
  }

  get activeFile(): StoreFile | null {
    return this.file;
  }

  /**
   * Writes a taken batch to the active segment, rolling to a new segment first when needed; `rolled` hears
   * of a roll with the batch that starts the new segment.
   */
  async write(batch: Batch, rolled: (first: Batch) => void): Promise<void> {
    const opts = this.host.opts;
    // admit reserved the seal this roll writes: give it back for the seal to take (see sealFits).
    if (batch.rollBefore) this.host.releaseReserved(SEAL_RECORD_BYTES);
    let seg = this.active;
    const overflows = seg !== undefined && seg.bytes + batch.bytes + SEAL_RECORD_BYTES > opts.segmentBytes;
    if (!seg || this.rollNext || batch.rollBefore || overflows) seg = await this.roll(batch, rolled);
    batch.segment = seg;
    batch.segmentOffset = seg.bytes;
    try {
      await this.file!.write(batch.buf.subarray(0, batch.bytes), seg.bytes);
    } catch (err) {
      throw fromFsError(err, `write ${seg.path}`);
    }
    seg.bytes += batch.bytes;
    this.host.diskBytesChanged(batch.bytes);
    this.host.releaseReserved(batch.bytes);
  }

  /**
   * A write or sync of `batch` failed: the segment is cut back to its last durable byte and abandoned, so
   * no later record ever lands behind bytes of unknown state.
   */
  async failed(batch: Batch): Promise<void> {
    const seg = batch.segment;
    this.rollNext = true;
    const written = seg !== null && batch.segmentOffset >= 0 && seg.bytes > batch.segmentOffset;
    if (!written) this.host.releaseReserved(batch.bytes);
    if (!seg || batch.segmentOffset < 0) return;
    await cutBackToDurable(this.host, seg, this.file);
  }

  /** Seals the active segment (when it has records) and creates the next one. */
  private async roll(first: Batch, rolled: (first: Batch) => void): Promise<SegmentInfo> {
    await this.sealActive();
    const { seg, file } = await createSegment(this.host, this.dir, first.firstSeq);
    this.file = file;
    this.segs.push(seg);
    this.rollNext = false;
    this.dirSyncPending = true;
    rolled(first);
    return seg;
  }

  /** Seals the active segment, if any, and closes its file (see sealSegment). */
  async sealActive(): Promise<void> {
    const seg = this.active;
    const file = this.file;
    this.file = null;
    if (!seg || !file) {
      await file?.close().catch(() => undefined);
      return;
    }
    await sealSegment(this.host, seg, file);
  }

  takeDirSync(): boolean {
    const pending = this.dirSyncPending;
    this.dirSyncPending = false;
    return pending;
  }

  adopt(seg: SegmentInfo, file: StoreFile | null): void {
    const last = this.segs.at(-1);
    assert(last === undefined || seg.no > last.no, `lane "${this.laneName}": segment ${seg.no} adopted out of order`);
    this.segs.push(seg);
    if (file === null) return;
    this.file = file;
    this.rollNext = false;
  }

  async drop(seg: SegmentInfo): Promise<void> {
    if (seg === this.active) {
      const file = this.file;
      this.file = null;
      this.rollNext = true;
      await file?.close().catch(() => undefined);
    }
    seg.deleted = true;
    this.segs.splice(this.segs.indexOf(seg), 1);
  }

  async close(): Promise<void> {
    await this.file?.close().catch(() => undefined);
    this.file = null;
  }
}
