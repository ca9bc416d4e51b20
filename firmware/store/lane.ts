import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AgeRing } from './age-ring.js';
import { bytesWithSeals, prepareRecord, waitFor, type Prepared } from './append.js';
import { Batch, BufferPool } from './batch.js';
import { StoreError, fromFsError } from './errors.js';
import type { StoreFile } from './fs.js';
import type { LaneHost } from './lane-host.js';
import { assertReadArgs, readLane, type ReadState } from './reader.js';
import { SEAL_RECORD_BYTES } from './record.js';
import type { SegmentInfo } from './segment.js';
import { createSegment, cutBackToDurable, sealSegment } from './segment-write.js';
import type { AppendInput, StoredRecord } from './types.js';

export type { LaneHost } from './lane-host.js';

/** Records one appendBatch call may carry. */
export const APPEND_BATCH_RECORDS_MAX = 10_000;

/**
 * One named lane of the log: its own segment files in lanes/<name>/ and its own sequence numbers.
 * Appends are framed into the open batch; the log's commit loop writes and syncs batches (group commit).
 */
export class Lane {
  readonly dir: string;
  /** Ordered by segment number; the last one is the active segment unless it is sealed. */
  readonly segments: SegmentInfo[] = [];
  nextSeq = 1;
  /** Everything ≤ ackedSeq is delivered (in memory; the checkpoint catches up at a bounded rate). */
  private acked = 0;
  /** The acked seq as of the last durable checkpoint: retention may delete up to here. */
  durableAckedSeq = 0;
  /**
   * The next seq as of the last durable checkpoint. Records at or above it are the only proof on disk
   * that their seqs were issued: retention checkpoints before deleting one (see Retention.drop).
   */
  durableNextSeq = 1;
  /** Highest seq readers may see: synced in always mode, written otherwise. */
  visibleSeq = 0;
  private readonly queue: Batch[] = [];
  private readonly buffers = new BufferPool();
  private queuedBytes = 0;
  /** Projected size of the active segment once every queued batch is written. */
  private tailBytes = 0;
  activeFile: StoreFile | null = null;
  /** The next write must start a new segment (after an I/O error, a quota drop or a seal). */
  rollNext = true;
  /** A segment was created since the last sync: its directory entry needs a directory fsync. */
  dirSyncPending = false;
  readonly readState: ReadState = { file: null, fileSegment: null, position: null, chunk: null, expiredThroughSeq: 0, chain: Promise.resolve() };
  private readonly listeners = new Set<(lastSeq: number) => void>();
  /** Enqueue times of recently read records: the oldest-pending age without a seek. */
  private readonly ages = new AgeRing();

  constructor(
    readonly name: string,
    lanesDir: string,
    private readonly host: LaneHost,
  ) {
    this.dir = join(lanesDir, name);
  }

  get active(): SegmentInfo | undefined {
    const last = this.segments[this.segments.length - 1];
    return last && !last.sealed && !last.deleted ? last : undefined;
  }

  /** Resolves with the record's seq once it is durable (always mode) or written (interval, none). */
  append(input: AppendInput): Promise<number> {
    try {
      this.host.assertOpen();
      const prepared = prepareRecord(this.name, this.host.opts, input);
      this.admit([prepared.total]);
      const batch = this.encode(prepared, this.host.wallNowMs(), this.host.storeNowMs());
      const seq = batch.lastSeq;
      return new Promise<number>((resolve, reject) => batch.wait({ seq, resolve, reject }));
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Appends several records with one promise, resolved with the last seq once all are durable. All or
   * nothing at the door: a record that is too large or a full quota fails the call before any is stored.
   */
  appendBatch(inputs: AppendInput[]): Promise<number> {
    try {
      this.host.assertOpen();
      if (inputs.length === 0 || inputs.length > APPEND_BATCH_RECORDS_MAX) {
        throw new StoreError('INVALID', `appendBatch takes 1..${APPEND_BATCH_RECORDS_MAX} records ("APPEND_BATCH_RECORDS_MAX"), got ${inputs.length}`);
      }
      const prepared = inputs.map((input) => prepareRecord(this.name, this.host.opts, input));
      this.admit(prepared.map((p) => p.total));
      const waits: Array<Promise<number>> = [];
      let current: Batch | null = null;
      // One clock reading for the whole call: its records were handed over at the same moment.
      const wallMs = this.host.wallNowMs();
      const storeMs = this.host.storeNowMs();
      for (const p of prepared) {
        const batch = this.encode(p, wallMs, storeMs);
        if (current && batch !== current) waits.push(waitFor(current));
        current = batch;
      }
      waits.push(waitFor(current!));
      const lastSeq = current!.lastSeq;
      return Promise.all(waits).then(() => lastSeq);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Bounds the bytes waiting for a commit, and the quota under reject-new, for records of `sizes` more:
   * their bytes plus the seal record of each segment they fill (a roll writes one, see encode/writeBatch).
   */
  private admit(sizes: number[]): void {
    const bytes = bytesWithSeals(sizes, this.tailBytes, this.host.opts.segmentBytes);
    if (this.queuedBytes + bytes > this.host.opts.appendQueueBytesMax) {
      throw new StoreError('FULL', `lane "${this.name}": ${this.queuedBytes} bytes await commit, over "appendQueueBytesMax"`);
    }
    this.host.reserveAppend(bytes);
  }

  /** Frames one record into the open batch (opening a new one at a segment or batch boundary). */
  private encode(p: Prepared, wallMs: number, storeMs: number): Batch {
    const opts = this.host.opts;
    let batch = this.queue[this.queue.length - 1];
    const rollNeeded = this.tailBytes + p.total + SEAL_RECORD_BYTES > opts.segmentBytes;
    if (!batch || rollNeeded || batch.bytes + p.total > opts.groupCommitBytesMax) {
      batch = new Batch(this.buffers, p.total);
      if (rollNeeded) {
        batch.rollBefore = true;
        this.tailBytes = 0;
      }
      this.queue.push(batch);
    }
    const seq = this.nextSeq++;
    batch.add(
      {
        seq,
        flags: 0,
        enqueuedAtMs: wallMs,
        expiresAtStoreMs: p.ttlSecs === 0 ? 0 : storeMs + p.ttlSecs * 1000,
        props: p.props,
        body: p.body,
      },
      p.total,
    );
    this.tailBytes += p.total;
    this.queuedBytes += p.total;
    this.host.scheduleCommit();
    return batch;
  }

  hasQueued(): boolean {
    return this.queue.length > 0;
  }

  /** Takes the oldest batch for the commit loop; later appends open a new batch. */
  takeBatch(): Batch | undefined {
    const batch = this.queue.shift();
    if (batch) this.queuedBytes -= batch.bytes;
    return batch;
  }

  /** Writes a taken batch to the active segment, rolling to a new segment first when needed. */
  async writeBatch(batch: Batch): Promise<void> {
    const opts = this.host.opts;
    // admit reserved the seal this roll writes: give it back for the seal to take (see sealFits).
    if (batch.rollBefore) this.host.releaseReserved(SEAL_RECORD_BYTES);
    let seg = this.active;
    if (!seg || this.rollNext || batch.rollBefore || seg.bytes + batch.bytes + SEAL_RECORD_BYTES > opts.segmentBytes) {
      seg = await this.roll(batch);
    }
    batch.segment = seg;
    batch.segmentOffset = seg.bytes;
    try {
      await this.activeFile!.write(batch.buf.subarray(0, batch.bytes), seg.bytes);
    } catch (err) {
      throw fromFsError(err, `write ${seg.path}`);
    }
    seg.bytes += batch.bytes;
    this.host.diskBytesChanged(batch.bytes);
    this.host.releaseReserved(batch.bytes);
  }

  /** The batch is durable (or written, outside always mode): readers may see it, producers hear back. */
  commitBatch(batch: Batch): void {
    const seg = batch.segment!;
    assert(batch.firstSeq > this.visibleSeq, `lane "${this.name}": batch ${batch.firstSeq} after ${this.visibleSeq}`);
    batch.foldInto(seg);
    seg.durableBytes = batch.segmentOffset + batch.bytes;
    this.visibleSeq = batch.lastSeq;
    batch.resolveAll();
    for (const listener of this.listeners) listener(batch.lastSeq);
  }

  /**
   * A write or sync failed: nothing in the batch counts as durable. The segment is cut back to its last
   * durable byte and abandoned, so no later record ever lands behind bytes of unknown state; seqs of the
   * failed records are never reused.
   */
  async failBatch(batch: Batch, err: Error): Promise<void> {
    batch.rejectAll(err);
    const seg = batch.segment;
    this.rollNext = true;
    const written = seg !== null && batch.segmentOffset >= 0 && seg.bytes > batch.segmentOffset;
    if (!written) this.host.releaseReserved(batch.bytes);
    if (!seg || batch.segmentOffset < 0) return;
    await cutBackToDurable(this.host, seg, this.activeFile);
  }

  /** Seals the active segment (when it has records) and creates the next one. */
  private async roll(first: Batch): Promise<SegmentInfo> {
    await this.sealActive();
    const { seg, file } = await createSegment(this.host, this.dir, first.firstSeq);
    this.activeFile = file;
    this.segments.push(seg);
    this.rollNext = false;
    this.dirSyncPending = true;
    // The batch being written was taken off the queue already: it is the new segment's first.
    this.tailBytes = first.bytes;
    for (const b of this.queue) this.tailBytes += b.bytes;
    return seg;
  }

  /**
   * Seals the active segment, if any, and closes its file (see sealSegment); the next write starts a new
   * segment.
   */
  async sealActive(): Promise<void> {
    const seg = this.active;
    const file = this.activeFile;
    this.activeFile = null;
    if (!seg || !file) {
      await file?.close().catch(() => undefined);
      return;
    }
    await sealSegment(this.host, seg, file);
  }

  /**
   * Marks everything up to `seq` delivered; an older seq changes nothing. Acknowledging a record no reader
   * could have seen (past lastDurableSeq) is a programmer error: it would let retention delete records
   * that were never delivered, so it throws instead of moving the cursor.
   */
  ack(seq: number): void {
    this.host.assertOpen();
    assert(Number.isSafeInteger(seq), `lane "${this.name}": ack(${seq}) needs an integer seq`);
    // Before the bound: after a restart the cursor may be past every record left on disk.
    if (seq <= this.acked) return;
    assert(seq <= this.visibleSeq, `lane "${this.name}": ack(${seq}) is past the last durable seq ${this.visibleSeq}`);
    const advanced = seq - this.acked;
    this.acked = seq;
    this.host.markCheckpointDirty(advanced);
  }

  ackedSeq(): number {
    return this.acked;
  }

  /** Used by recovery only. */
  restoreAcked(seq: number): void {
    this.acked = seq;
    this.durableAckedSeq = seq;
  }

  lastDurableSeq(): number {
    return this.visibleSeq;
  }

  /** Records with seq ≥ fromSeq, in order; expired records skipped; only durable records in always mode. */
  read(fromSeq: number, limits: { recordsMax?: number; bytesMax?: number } = {}): Promise<StoredRecord[]> {
    try {
      this.host.assertOpen();
      assertReadArgs(this.name, fromSeq, limits);
    } catch (err) {
      return Promise.reject(err);
    }
    const run = this.readState.chain.then(() => readLane(this, this.host, fromSeq, limits));
    this.readState.chain = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
  }

  /** Called by the reader for every record it returns (two typed-array writes, no allocation). */
  sampleAge(seq: number, enqueuedAtMs: number): void {
    this.ages.sample(seq, enqueuedAtMs);
  }

  /** Enqueue time of the oldest unacknowledged record, given the first segment holding one. */
  oldestPendingEnqueuedAtMs(seg: SegmentInfo): number {
    return this.ages.oldestPendingEnqueuedAtMs(this.acked, seg);
  }

  onDurable(listener: (lastSeq: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Rejects everything still queued (close without flush, or a fatal error). */
  rejectQueued(err: Error): void {
    for (const b of this.queue.splice(0)) b.rejectAll(err);
    this.queuedBytes = 0;
  }
}
