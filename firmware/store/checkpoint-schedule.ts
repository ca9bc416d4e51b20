import type { CheckpointFile, CheckpointState } from './checkpoint.js';
import type { Lane } from './lane.js';
import type { ResolvedOptions } from './options.js';
import type { StoreClock } from './store-clock.js';

/** Even with no acks, the checkpoint is rewritten this often so the store clock survives a restart. */
const CLOCK_CHECKPOINT_MS = 60_000;

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
  private lastStoreMs: number;
  /** Acknowledgements since the last checkpoint began (see markDirty). */
  private ackedSince = 0;

  constructor(
    private readonly host: CheckpointHost,
    private readonly file: CheckpointFile | null,
    private readonly storeClock: StoreClock,
    private generation: number,
  ) {
    this.lastStoreMs = storeClock.nowMs();
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
    if (this.run) {
      this.again = true;
      return this.run;
    }
    const { lanes } = this.host;
    this.run = (async () => {
      do {
        this.again = false;
        this.ackedSince = 0;
        const state: CheckpointState = {
          generation: ++this.generation,
          ...this.storeClock.snapshot(),
          lastSegmentNo: this.host.lastSegmentNo(),
          lanes: new Map([...lanes].map(([name, l]) => [name, { ackedSeq: l.ackedSeq(), nextSeq: l.nextSeq }])),
        };
        await this.file!.write(state);
        this.lastStoreMs = state.storeMs;
        for (const [name, cursor] of state.lanes) lanes.get(name)!.durableAckedSeq = cursor.ackedSeq;
      } while (this.again);
    })().finally(() => (this.run = null));
    await this.run;
    if (!this.host.isClosing()) await this.host.sweep();
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
