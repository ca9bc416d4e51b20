import { join } from 'node:path';
import { Batch, BufferPool } from './batch.js';
import { StoreError, fromFsError } from './errors.js';
import type { StoreFile, StoreFs } from './fs.js';
import type { ResolvedOptions } from './options.js';
import { readLane, type ReadState } from './reader.js';
import { FLAG_SEAL, SEAL_RECORD_BYTES, encodeProperties, encodeRecord, encodeSealBody, recordBytes } from './record.js';
import { emptySegment, type SegmentInfo } from './segment.js';
import type { AppendInput, DamageReport, StoredRecord } from './types.js';

/** Records one appendBatch call may carry. */
export const APPEND_BATCH_RECORDS_MAX = 10_000;

interface Prepared {
  props: Buffer | null;
  total: number;
  ttlSecs: number;
  body: Buffer;
}

function waitFor(batch: Batch): Promise<number> {
  const seq = batch.lastSeq;
  return new Promise((resolve, reject) => batch.wait({ seq, resolve, reject }));
}

/** Enqueue-time samples kept per lane for the oldest-pending statistic. */
const AGE_SAMPLES_MAX = 4096;

/** What a lane needs from the log that owns it. */
export interface LaneHost {
  readonly opts: ResolvedOptions;
  readonly fs: StoreFs;
  storeNowMs(): number;
  wallNowMs(): number;
  nextSegmentNo(): number;
  /** Reserves bytes for an append under reject-new; throws FULL when the quota would be exceeded. */
  reserveAppend(bytes: number): void;
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
  /** (seq, enqueue wall ms) of recently read records, a ring: the oldest-pending age without a seek. */
  private readonly ageSeqs = new Float64Array(AGE_SAMPLES_MAX);
  private readonly ageTimes = new Float64Array(AGE_SAMPLES_MAX);
  private ageHead = 0;
  private ageCount = 0;

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
      const prepared = this.prepare(input);
      this.admit(prepared.total);
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
      const prepared = inputs.map((input) => this.prepare(input));
      this.admit(prepared.reduce((sum, p) => sum + p.total, 0));
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

  private prepare(input: AppendInput): Prepared {
    const opts = this.host.opts;
    if (!Buffer.isBuffer(input.body)) throw new StoreError('INVALID', `append to lane "${this.name}": body must be a Buffer`);
    const props = encodeProperties(input.properties);
    const total = recordBytes(props, input.body);
    if (total > opts.recordBytesMax) {
      throw new StoreError('TOO_LARGE', `record of ${total} bytes exceeds "recordBytesMax" (${opts.recordBytesMax}) on lane "${this.name}"`);
    }
    const ttlSecs = input.ttlSecs ?? opts.ttlSecs;
    if (!Number.isInteger(ttlSecs) || ttlSecs < 0) throw new StoreError('INVALID', `"ttlSecs" must be a non-negative integer, got ${ttlSecs}`);
    return { props, total, ttlSecs, body: input.body };
  }

  /** Bounds the bytes waiting for a commit, and the quota under reject-new, for `bytes` more. */
  private admit(bytes: number): void {
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
    let seg = this.active;
    if (!seg || this.rollNext || batch.rollBefore || seg.bytes + batch.bytes + SEAL_RECORD_BYTES > opts.segmentBytes) {
      seg = await this.roll(batch.firstSeq);
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
    // Even a write that failed may have left bytes behind (O_DSYNC reports the sync's failure on the
    // write): cut back to the last durable byte whatever the in-memory size says.
    const lost = seg.bytes - seg.durableBytes;
    try {
      await this.activeFile?.truncate(seg.durableBytes);
    } catch {
      // The file keeps bytes of unknown state past durableBytes; readers stop at durableBytes and the
      // segment is never appended to again, so they stay invisible until recovery judges them by CRC.
    }
    seg.bytes = seg.durableBytes;
    this.host.diskBytesChanged(-lost);
  }

  /** Seals the active segment (when it has records) and creates the next one. */
  private async roll(baseSeq: number): Promise<SegmentInfo> {
    await this.sealActive();
    const no = this.host.nextSegmentNo();
    const seg = emptySegment(no, baseSeq, '');
    seg.path = join(this.dir, seg.name);
    try {
      this.activeFile = await this.host.fs.open(seg.path, 'create', { dsync: this.host.opts.syncMode === 'always' });
    } catch (err) {
      throw fromFsError(err, `create ${seg.path}`);
    }
    this.segments.push(seg);
    this.rollNext = false;
    this.dirSyncPending = true;
    this.tailBytes = 0;
    for (const b of this.queue) this.tailBytes += b.bytes;
    return seg;
  }

  /**
   * Appends a seal record so the next open learns this segment from its last 72 bytes. The seal is not
   * synced on its own: if it is lost, open scans the segment instead, which is slower but as correct.
   */
  async sealActive(): Promise<void> {
    const seg = this.active;
    const file = this.activeFile;
    this.activeFile = null;
    if (!seg || !file) {
      await file?.close().catch(() => undefined);
      return;
    }
    if (seg.records > 0 && seg.bytes === seg.durableBytes) {
      const body = encodeSealBody({
        firstSeq: seg.firstSeq,
        lastSeq: seg.lastSeq,
        records: seg.records,
        maxExpiresAtStoreMs: seg.neverExpires ? 0 : seg.maxExpiresAtStoreMs,
        firstEnqueuedAtMs: seg.firstEnqueuedAtMs,
      });
      const buf = Buffer.alloc(SEAL_RECORD_BYTES);
      encodeRecord(buf, 0, { seq: seg.lastSeq + 1, flags: FLAG_SEAL, enqueuedAtMs: 0, expiresAtStoreMs: 0, props: null, body });
      try {
        await file.write(buf, seg.bytes);
        seg.bytes += SEAL_RECORD_BYTES;
        seg.durableBytes = seg.bytes;
        this.host.diskBytesChanged(SEAL_RECORD_BYTES);
      } catch {
        // Unsealed segments are scanned at open instead; nothing is lost.
      }
    }
    seg.sealed = true;
    await file.close().catch(() => undefined);
  }

  /** Marks everything up to `seq` delivered. The cursor only moves forward and never past the last seq. */
  ack(seq: number): void {
    this.host.assertOpen();
    const target = Math.min(Math.floor(seq), this.nextSeq - 1);
    if (!(target > this.acked)) return;
    const advanced = target - this.acked;
    this.acked = target;
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
    const last = this.ageCount > 0 ? this.ageSeqs[(this.ageHead + this.ageCount - 1) % AGE_SAMPLES_MAX]! : 0;
    if (seq <= last) return;
    const slot = (this.ageHead + this.ageCount) % AGE_SAMPLES_MAX;
    this.ageSeqs[slot] = seq;
    this.ageTimes[slot] = enqueuedAtMs;
    if (this.ageCount < AGE_SAMPLES_MAX) this.ageCount++;
    else this.ageHead = (this.ageHead + 1) % AGE_SAMPLES_MAX;
  }

  /** Enqueue time of the oldest unacknowledged record, given the first segment holding one. */
  oldestPendingEnqueuedAtMs(seg: SegmentInfo): number {
    while (this.ageCount > 0 && this.ageSeqs[this.ageHead]! <= this.acked) {
      this.ageHead = (this.ageHead + 1) % AGE_SAMPLES_MAX;
      this.ageCount--;
    }
    if (seg.firstSeq > this.acked) return seg.firstEnqueuedAtMs;
    // The first sample above the cursor is the oldest pending record when the reader saw it; if the
    // reader has not got that far, the segment's first record is the best bound we have without a read.
    return this.ageCount > 0 && this.ageSeqs[this.ageHead]! <= seg.lastSeq ? this.ageTimes[this.ageHead]! : seg.firstEnqueuedAtMs;
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
