import assert from 'node:assert/strict';
import { join } from 'node:path';
import { AgeRing } from './age-ring.js';
import { prepareRecord, waitFor } from './append.js';
import type { Batch } from './batch.js';
import { StoreError } from './errors.js';
import type { StoreFile } from './fs.js';
import type { LaneHost } from './lane-host.js';
import { LaneFiles } from './lane-files.js';
import { LaneQueue } from './lane-queue.js';
import { assertReadArgs, newReadState, readLane, type ReadState } from './reader.js';
import type { SegmentInfo } from './segment.js';
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
  private readonly files: LaneFiles;
  private next = 1;
  /** Everything ≤ ackedSeq is delivered (in memory; the checkpoint catches up at a bounded rate). */
  private acked = 0;
  /** The acked seq as of the last durable checkpoint: retention may delete up to here. */
  private durableAcked = 0;
  /**
   * The next seq as of the last durable checkpoint. Records at or above it are the only proof on disk
   * that their seqs were issued: retention checkpoints before deleting one (see Retention.drop).
   */
  private durableNext = 1;
  /** Highest seq readers may see: synced in always mode, written otherwise. */
  private visible = 0;
  private readonly queue: LaneQueue;
  /** The reader's own state (reader.ts writes it); the lane only lets go of what it points at. */
  readonly readState: ReadState = newReadState();
  private readonly listeners = new Set<(lastSeq: number) => void>();
  /** Enqueue times of recently read records: the oldest-pending age without a seek. */
  private readonly ages = new AgeRing();

  constructor(
    readonly name: string,
    lanesDir: string,
    private readonly host: LaneHost,
  ) {
    this.dir = join(lanesDir, name);
    this.queue = new LaneQueue(name, host);
    this.files = new LaneFiles(name, this.dir, host);
  }

  get segments(): readonly SegmentInfo[] {
    return this.files.segments;
  }

  get active(): SegmentInfo | undefined {
    return this.files.active;
  }

  /** The seq the next append gets. */
  get nextSeq(): number {
    return this.next;
  }

  get durableAckedSeq(): number {
    return this.durableAcked;
  }

  get durableNextSeq(): number {
    return this.durableNext;
  }

  get visibleSeq(): number {
    return this.visible;
  }

  /** The active segment's write handle; null between a roll, a drop or an I/O error and the next write. */
  get activeFile(): StoreFile | null {
    return this.files.activeFile;
  }

  /** Resolves with the record's seq once it is durable (always mode) or written (interval, none). */
  append(input: AppendInput): Promise<number> {
    try {
      this.host.assertOpen();
      const prepared = prepareRecord(this.name, this.host.opts, input);
      this.queue.admit([prepared.total]);
      const batch = this.queue.frame(prepared, this.next++, this.host.wallNowMs(), this.host.storeNowMs());
      return waitFor(batch);
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
        const what = `appendBatch takes 1..${APPEND_BATCH_RECORDS_MAX} records ("APPEND_BATCH_RECORDS_MAX")`;
        throw new StoreError('INVALID', `${what}, got ${inputs.length}`);
      }
      const prepared = inputs.map((input) => prepareRecord(this.name, this.host.opts, input));
      this.queue.admit(prepared.map((p) => p.total));
      const waits: Array<Promise<number>> = [];
      let current: Batch | null = null;
      // One clock reading for the whole call: its records were handed over at the same moment.
      const wallMs = this.host.wallNowMs();
      const storeMs = this.host.storeNowMs();
      for (const p of prepared) {
        const batch = this.queue.frame(p, this.next++, wallMs, storeMs);
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

  hasQueued(): boolean {
    return this.queue.hasQueued();
  }

  /** Takes the oldest batch for the commit loop; later appends open a new batch. */
  takeBatch(): Batch | undefined {
    return this.queue.take();
  }

  /** Writes a taken batch to the active segment, rolling to a new segment first when needed. */
  writeBatch(batch: Batch): Promise<void> {
    return this.files.write(batch, (first) => this.queue.rolled(first));
  }

  /** The batch is durable (or written, outside always mode): readers may see it, producers hear back. */
  commitBatch(batch: Batch): void {
    const seg = batch.segment!;
    assert(batch.firstSeq > this.visible, `lane "${this.name}": batch ${batch.firstSeq} after ${this.visible}`);
    batch.foldInto(seg);
    seg.durableBytes = batch.segmentOffset + batch.bytes;
    this.visible = batch.lastSeq;
    batch.resolveAll();
    for (const listener of this.listeners) listener(batch.lastSeq);
  }

  /**
   * A write or sync failed: nothing in the batch counts as durable. The segment is cut back to its last
   * durable byte and abandoned, so no later record ever lands behind bytes of unknown state; seqs of the
   * failed records are never reused.
   */
  failBatch(batch: Batch, err: Error): Promise<void> {
    batch.rejectAll(err);
    return this.files.failed(batch);
  }

  /** Seals the active segment, if any, and closes its file; the next write starts a new segment. */
  sealActive(): Promise<void> {
    return this.files.sealActive();
  }

  /** True once per segment created since the last call: the caller fsyncs the lane's directory. */
  takeDirSync(): boolean {
    return this.files.takeDirSync();
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
    assert(seq <= this.visible, `lane "${this.name}": ack(${seq}) is past the last durable seq ${this.visible}`);
    const advanced = seq - this.acked;
    this.acked = seq;
    this.host.markCheckpointDirty(advanced);
  }

  ackedSeq(): number {
    return this.acked;
  }

  lastDurableSeq(): number {
    return this.visible;
  }

  /** A checkpoint holding this lane's cursor at (ackedSeq, nextSeq) is durable. */
  checkpointed(ackedSeq: number, nextSeq: number): void {
    assert(ackedSeq <= this.acked && nextSeq <= this.next, `lane "${this.name}": checkpoint ahead of the lane`);
    this.durableAcked = ackedSeq;
    this.durableNext = nextSeq;
  }

  /**
   * Recovery, once every segment is adopted: `lastSeq` is the highest seq on disk, `cursor` the
   * checkpoint's. The next seq passes both, so no seq the log ever issued is issued again.
   */
  restore(lastSeq: number, cursor: { ackedSeq: number; nextSeq: number } | undefined): void {
    const acked = cursor?.ackedSeq ?? 0;
    this.next = Math.max(lastSeq, acked, (cursor?.nextSeq ?? 1) - 1) + 1;
    this.durableNext = cursor?.nextSeq ?? 1;
    this.visible = lastSeq;
    this.acked = Math.min(acked, this.next - 1);
    this.durableAcked = this.acked;
  }

  /** Recovery: `seg` is the next segment on disk; `file`, when given, becomes the active write handle. */
  adoptSegment(seg: SegmentInfo, file: StoreFile | null): void {
    this.files.adopt(seg, file);
  }

  /** Retention: forgets `seg` (its file is the caller's to delete); dropping the active one closes it. */
  async dropSegment(seg: SegmentInfo): Promise<void> {
    await this.files.drop(seg);
    if (this.readState.position?.seg === seg) this.readState.position = null;
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
    this.queue.rejectAll(err);
  }

  /** Close: lets go of the write and read handles (nothing is flushed here). */
  async closeFiles(): Promise<void> {
    await this.files.close();
    await this.readState.file?.close().catch(() => undefined);
    this.readState.file = null;
  }
}
