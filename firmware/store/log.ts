import assert from 'node:assert/strict';
import { join } from 'node:path';
import { systemClock, type Clock } from '../clock.js';
import { CHECKPOINT_SLOT_BYTES, CheckpointFile, LANES_MAX } from './checkpoint.js';
import { CheckpointScheduler } from './checkpoint-schedule.js';
import { CommitLoop } from './commit.js';
import { StoreError, fromFsError } from './errors.js';
import { mkdirDurable, nodeFs, type StoreFs } from './fs.js';
import { Lane, type LaneHost } from './lane.js';
import { acquireLock, releaseLock } from './lock.js';
import { resolveOptions, type ResolvedOptions, type RingLogOptions } from './options.js';
import { recoverLane } from './recover.js';
import { SEAL_RECORD_BYTES } from './record.js';
import { Retention } from './retention.js';
import { applyRuntimeSettings, type RuntimeSettings } from './settings.js';
import { StoreClock } from './store-clock.js';
import type { DamageReport, LaneStats, LogStats } from './types.js';
import { LANE_NAME_PATTERN } from './names.js';
import type { Counters } from './store-host.js';

/**
 * The ring log: lanes of append-only segment files, one group-commit loop for all of them, a shared
 * quota, checkpointed cursors and a store clock for TTLs. See README.md, "The ring log".
 */
export class RingLog implements LaneHost {
  readonly opts: ResolvedOptions;
  readonly fs: StoreFs;
  readonly counters: Counters = {
    expiredRecords: 0,
    droppedRecords: 0,
    corruptRecords: 0,
    corruptBytes: 0,
    lastSyncLatencyMs: 0,
    syncCount: 0,
  };
  readonly lanes = new Map<string, Lane>();
  readonly damage: DamageReport[] = [];
  private readonly clock: Clock;
  private storeClock!: StoreClock;
  private checkpoint: CheckpointFile | null = null;
  private checkpoints!: CheckpointScheduler;
  private lastSegmentNo = 0;
  /** Segment bytes plus the checkpoint, counted as its two slots from the start (reserved, not yet written). */
  diskBytes = CHECKPOINT_SLOT_BYTES * 2;
  private reservedBytes = 0;
  private readonly commits: CommitLoop;
  private mutex: Promise<unknown> = Promise.resolve();
  private syncTimer: NodeJS.Timeout | null = null;
  private maintenanceTimer: NodeJS.Timeout | null = null;
  private readonly retention: Retention;
  private closing = false;
  private readonly onDamage: ((r: DamageReport) => void) | undefined;

  private constructor(opts: RingLogOptions) {
    this.opts = resolveOptions(opts);
    this.fs = opts.fs ?? nodeFs;
    this.clock = opts.clock ?? systemClock;
    this.onDamage = opts.onDamage;
    this.retention = new Retention(this);
    this.commits = new CommitLoop(this, this.retention);
  }

  static async open(opts: RingLogOptions): Promise<RingLog> {
    const log = new RingLog(opts);
    await log.init();
    return log;
  }

  private async init(): Promise<void> {
    const { dir, readOnly } = this.opts;
    if (!readOnly) {
      await mkdirDurable(this.fs, dir, 'lanes');
      if (this.fs === nodeFs) await acquireLock(dir);
    }
    const { checkpoint, state } = await CheckpointFile.open(this.fs, dir, readOnly);
    // lanes/ and the checkpoint may have just been created (or recreated after a power cut took their
    // names): their directory entries must be durable before anything in them is acknowledged.
    if (!readOnly) await this.fs.syncDir(dir);
    this.checkpoint = checkpoint;
    this.lastSegmentNo = state?.lastSegmentNo ?? 0;
    this.storeClock = new StoreClock(this.clock, state);
    const host = {
      opts: this.opts,
      lanes: this.lanes,
      isClosing: () => this.closing,
      lastSegmentNo: () => this.lastSegmentNo,
      sweep: () => this.exclusive(() => this.retention.sweep()),
    };
    this.checkpoints = new CheckpointScheduler(host, checkpoint, this.storeClock, state);
    for (const name of (await this.fs.readdir(join(dir, 'lanes'))).sort()) {
      if (!LANE_NAME_PATTERN.test(name)) continue;
      const lane = new Lane(name, join(dir, 'lanes'), this);
      await recoverLane(lane, this, state?.lanes.get(name));
      for (const seg of lane.segments) this.lastSegmentNo = Math.max(this.lastSegmentNo, seg.no);
      this.lanes.set(name, lane);
    }
    if (readOnly) return;
    // The clock anchor at once, not after the first interval: a life shorter than that still counts.
    await this.checkpoints.persist().catch(() => undefined);
    this.maintenanceTimer = setInterval(() => void this.maintenancePass(), this.opts.retentionIntervalMs).unref();
    if (this.opts.syncMode === 'interval') {
      const sync = () => void this.commits.syncAll().catch(() => undefined);
      this.syncTimer = setInterval(sync, this.opts.syncIntervalMs).unref();
    }
  }

  /** The lane called `name`, created (durably) on first use. */
  async lane(name: string): Promise<Lane> {
    this.assertOpen();
    const existing = this.lanes.get(name);
    if (existing) return existing;
    if (!LANE_NAME_PATTERN.test(name)) {
      throw new StoreError('INVALID', `lane name "${name}" must match ${LANE_NAME_PATTERN}`);
    }
    if (this.lanes.size >= LANES_MAX) throw new StoreError('INVALID', `at most ${LANES_MAX} lanes ("LANES_MAX")`);
    if (this.opts.readOnly) throw new StoreError('INVALID', `lane "${name}" does not exist (log opened read-only)`);
    const lane = new Lane(name, join(this.opts.dir, 'lanes'), this);
    try {
      await this.fs.mkdir(lane.dir);
      await this.fs.syncDir(join(this.opts.dir, 'lanes'));
    } catch (err) {
      throw fromFsError(err, `create lane ${lane.dir}`);
    }
    this.lanes.set(name, this.lanes.get(name) ?? lane);
    return this.lanes.get(name)!;
  }

  /** Set by close(): appends are refused and retention stops between two deletions. */
  isClosing(): boolean {
    return this.closing;
  }

  storeNowMs(): number {
    return this.storeClock.nowMs();
  }

  wallNowMs(): number {
    return this.clock.wallMs();
  }

  nextSegmentNo(): number {
    return ++this.lastSegmentNo;
  }

  assertOpen(): void {
    if (this.closing) throw new StoreError('CLOSED', `ring log ${this.opts.dir} is closed`);
  }

  reserveAppend(bytes: number): void {
    if (this.opts.quotaPolicy === 'reject-new' && this.diskBytes + this.reservedBytes + bytes > this.opts.quotaBytes) {
      void this.maintenancePass();
      const what = `ring log ${this.opts.dir} is at its quota of ${this.opts.quotaBytes} bytes ("quotaBytes", reject-new)`;
      throw new StoreError('FULL', what);
    }
    this.reservedBytes += bytes;
  }

  sealFits(): boolean {
    if (this.opts.quotaPolicy !== 'reject-new') return true;
    return this.diskBytes + this.reservedBytes + SEAL_RECORD_BYTES <= this.opts.quotaBytes;
  }

  releaseReserved(bytes: number): void {
    this.reservedBytes -= bytes;
    assert(this.reservedBytes >= 0, `ring log ${this.opts.dir}: ${this.reservedBytes} bytes reserved`);
  }

  diskBytesChanged(delta: number): void {
    this.diskBytes += delta;
    // The checkpoint's two slots are counted from the start: nothing can take the total below them.
    assert(this.diskBytes >= CHECKPOINT_SLOT_BYTES * 2, `ring log ${this.opts.dir}: ${this.diskBytes} bytes on disk`);
  }

  reportDamage(report: DamageReport): void {
    const same = (d: DamageReport) =>
      d.segment === report.segment && d.lane === report.lane && d.fromByte === report.fromByte;
    if (this.damage.some(same)) return;
    if (this.damage.length < 1000) this.damage.push(report);
    this.counters.corruptRecords++;
    this.counters.corruptBytes += report.toByte - report.fromByte;
    this.onDamage?.(report);
  }

  countExpired(records: number): void {
    this.counters.expiredRecords += records;
  }

  countCorrupt(records: number, bytes: number): void {
    this.counters.corruptRecords += records;
    this.counters.corruptBytes += bytes;
  }

  /** Runs `fn` with no commit round, retention pass or quota drop in progress. */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.mutex.then(fn);
    this.mutex = run.catch(() => undefined);
    return run;
  }

  /** An append is waiting: a group-commit round runs on the next turn of the event loop (see CommitLoop). */
  scheduleCommit(): void {
    this.commits.schedule();
  }

  /** An ack moved a cursor by `records`: the checkpoint follows (see CheckpointScheduler.markDirty). */
  markCheckpointDirty(records: number): void {
    this.checkpoints.markDirty(records);
  }

  /** Writes cursors and the clock anchor; then retention may delete what the new checkpoint covers. */
  writeCheckpoint(): Promise<void> {
    return this.checkpoints.write();
  }

  /** Durably writes cursors and next seqs now, without a retention pass (see CheckpointScheduler.persist). */
  persistCheckpoint(): Promise<void> {
    return this.checkpoints.persist();
  }

  /** Store time in the last durable checkpoint: where the store clock would resume after a crash. */
  durableStoreMs(): number {
    return this.checkpoints.durableStoreMs();
  }

  /**
   * What the retention timer runs every retentionIntervalMs: credits known downtime, writes the clock
   * checkpoint when due, deletes what retention allows. Public so tests drive the production pass at
   * chosen moments (the power-cut workloads), keeping each run's op sequence reproducible.
   */
  async maintenancePass(): Promise<void> {
    if (this.closing) return;
    this.storeClock.creditDowntime();
    try {
      if (this.checkpoints.clockDue()) await this.writeCheckpoint();
      else await this.exclusive(() => this.retention.sweep());
    } catch {
      // Retried on the next pass; append paths report I/O errors to their callers.
    }
  }

  /**
   * Applies settings pushed from the cloud while running: the default TTL for new records, the quota and
   * its policy. Validated at once like the options at open (an INVALID error, thrown, names the field); the
   * promise resolves once a retention pass has enforced them (a lower quota: segments dropped under
   * drop-oldest). The caller persists them.
   */
  applySettings(settings: RuntimeSettings): Promise<void> {
    applyRuntimeSettings(this.opts, settings);
    return this.maintenancePass();
  }

  stats(): LogStats {
    const lanes: LaneStats[] = [...this.lanes.values()].map((l) => this.retention.laneStats(l));
    return {
      lanes,
      ...this.counters,
      segmentCount: lanes.reduce((n, l) => n + l.segments, 0),
      bytesOnDisk: this.diskBytes,
      quotaBytes: this.opts.quotaBytes,
    };
  }

  /** Flushes what producers are waiting on, writes a final checkpoint and releases every file. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.checkpoints.stopTimer();
    for (const t of [this.syncTimer, this.maintenanceTimer]) if (t) clearTimeout(t);
    if (!this.opts.readOnly) await this.flushForClose();
    for (const lane of this.lanes.values()) {
      lane.rejectQueued(new StoreError('CLOSED', 'ring log closed'));
      await lane.closeFiles();
    }
    await this.checkpoint?.close().catch(() => undefined);
    if (this.fs === nodeFs && !this.opts.readOnly) await releaseLock(this.opts.dir);
  }

  private async flushForClose(): Promise<void> {
    // A retention pass under way finishes its current deletion (it stops at the next, seeing `closing`):
    // nothing of this log may touch the files once close resolved, a new open may be reading them.
    await this.exclusive(async () => undefined);
    await this.commits.drain();
    if (this.opts.syncMode !== 'always') await this.commits.syncAll().catch(() => undefined);
    await this.writeCheckpoint().catch(() => undefined);
  }
}
