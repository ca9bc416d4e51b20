import type { CheckpointFile, CheckpointState } from './checkpoint.js';
import type { Lane } from './lane.js';
import type { ResolvedOptions } from './options.js';
import type { StoreClock } from './store-clock.js';

/**
 * Even with no acks, the checkpoint is rewritten this often so the store clock survives a restart: a
 * gateway in a crash loop keeps all but this much of each life towards its TTLs (at 60 s, lives of 50 s
 * never expired anything). One 4 KiB slot write per 10 s is negligible flash wear.
 */
export const CLOCK_CHECKPOINT_MS = 10_000;

/** What the checkpoint needs from the log that owns it. */
export interface CheckpointHost {
  readonly opts: ResolvedOptions;
  readonly lanes: ReadonlyMap<string, Lane>;
  isClosing(): boolean;
  lastSegmentNo(): number;
  /** A retention pass under the log's exclusive section. */
  sweep(): Promise<void>;
}

/** When and what the log checkpoints: lane cursors, the segment counter and the store clock anchor. */
export class CheckpointScheduler {
  private timer: NodeJS.Timeout | null = null;
  private run: Promise<void> | null = null;
  private again = false;
  /** Store time in the last durable checkpoint: what a restart resumes the store clock from. */
  private lastStoreMs: number;
  /** Generation of the last durable checkpoint; the next write uses the one after it. */
  private generation: number;
  /** Acknowledgements since the last checkpoint began (see markDirty). */
  private ackedSince = 0;

  constructor(
    private readonly host: CheckpointHost,
    private readonly file: CheckpointFile | null,
    private readonly storeClock: StoreClock,
    loaded: CheckpointState | null,
  ) {
    this.generation = loaded?.generation ?? 0;
    this.lastStoreMs = loaded?.storeMs ?? -Infinity;
  }

  /** Store time a restart would resume from (see lastStoreMs). */
  durableStoreMs(): number {
    return this.lastStoreMs;
  }

  /**
   * An ack moved a cursor by `records`. The checkpoint follows within checkpointIntervalMs, or at once
   * when checkpointAckRecords acknowledgements piled up: after a crash the pump redelivers what the last
   * checkpoint missed, so a fast drain must not leave a whole interval's worth of messages behind.
   */
  markDirty(records: number): void {
    if (this.host.isClosing()) return;
    this.ackedSince += records;
    if (this.ackedSince >= this.host.opts.checkpointAckRecords) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      // A checkpoint under way took its cursors before these acks: have it go round once more, or the
      // last burst of a drain would wait for the 60 s clock checkpoint (and its segments with it).
      if (this.run) this.again = true;
      else void this.write().catch(() => undefined);
      return;
    }
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      void this.write().catch(() => undefined);
    }, this.host.opts.checkpointIntervalMs).unref();
  }

  /** Writes cursors and the clock anchor; then retention may delete what the new checkpoint covers. */
  async write(): Promise<void> {
    if (!this.file) return;
    await this.persist();
    if (!this.host.isClosing()) await this.host.sweep();
  }

  /**
   * Durably writes the current cursors, next seqs and clock anchor, without the retention pass that
   * write() runs after it: retention itself calls this (inside the log's exclusive section) before it
   * deletes a lane's newest records, so the lane's next seq outlives them.
   */
  persist(): Promise<void> {
    if (!this.file) return Promise.resolve();
    if (this.run) {
      this.again = true;
      return this.run;
    }
    this.run = this.writeRounds().finally(() => (this.run = null));
    return this.run;
  }

  private async writeRounds(): Promise<void> {
    const { lanes } = this.host;
    do {
      this.again = false;
      this.ackedSince = 0;
      // The generation moves on only once its slot is durable: a failed write is retried into the same
      // (now unreadable) slot, never into the other one, which still holds the last good checkpoint.
      const state: CheckpointState = {
        generation: this.generation + 1,
        ...this.storeClock.snapshot(),
        lastSegmentNo: this.host.lastSegmentNo(),
        lanes: new Map([...lanes].map(([name, l]) => [name, { ackedSeq: l.ackedSeq(), nextSeq: l.nextSeq }])),
      };
      await this.file!.write(state);
      this.generation = state.generation;
      this.lastStoreMs = state.storeMs;
      for (const [name, cursor] of state.lanes) {
        lanes.get(name)!.checkpointed(cursor.ackedSeq, cursor.nextSeq);
      }
    } while (this.again);
  }

  /** The store clock moved CLOCK_CHECKPOINT_MS since the last checkpoint: one is due even without acks. */
  clockDue(): boolean {
    return this.storeClock.nowMs() - this.lastStoreMs >= CLOCK_CHECKPOINT_MS;
  }

  /** At close: no timed checkpoint from now on (close writes the last one itself). */
  stopTimer(): void {
    if (this.timer) clearTimeout(this.timer);
  }
}
