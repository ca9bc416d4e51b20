import type { Batch } from './batch.js';
import { fromFsError } from './errors.js';
import type { Lane } from './lane.js';
import { SEAL_RECORD_BYTES } from './record.js';
import type { RoomMaker, StoreHost } from './store-host.js';

/**
 * The log's group commit, one loop for all lanes: an append schedules it, each round writes at most one
 * queued batch per lane and syncs each touched file once. Rounds run under the log's exclusive section.
 */
export class CommitLoop {
  private scheduled = false;
  private running: Promise<void> | null = null;

  constructor(
    private readonly log: StoreHost,
    private readonly retention: RoomMaker,
  ) {}

  schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      if (!this.running) this.running = this.runCommits().finally(() => (this.running = null));
    });
  }

  /** Returns once no round is scheduled or running (at close, after appends were shut out). */
  async drain(): Promise<void> {
    while (this.scheduled || this.running) {
      await new Promise((r) => setImmediate(r));
      await this.running;
    }
  }

  private async runCommits(): Promise<void> {
    while ([...this.log.lanes.values()].some((l) => l.hasQueued())) {
      await this.log.exclusive(() => this.commitRound());
    }
  }

  /** One group commit: at most one batch per lane written, then one fdatasync per touched file. */
  private async commitRound(): Promise<void> {
    const { opts, counters } = this.log;
    // From the first write: in always mode the O_DSYNC write is the sync.
    const started = performance.now();
    const written: Array<{ lane: Lane; batch: Batch }> = [];
    for (const lane of this.log.lanes.values()) {
      const batch = lane.takeBatch();
      if (!batch) continue;
      try {
        const room = batch.bytes + SEAL_RECORD_BYTES;
        if (opts.quotaPolicy === 'drop-oldest') await this.retention.makeRoom(lane, room, written);
        await lane.writeBatch(batch);
        written.push({ lane, batch });
      } catch (err) {
        await lane.failBatch(batch, fromFsError(err, `append to lane ${lane.name}`));
      }
    }
    if (opts.syncMode !== 'always') {
      for (const { lane, batch } of written) lane.commitBatch(batch);
      return;
    }
    counters.syncCount++;
    await Promise.all(
      written.map(async ({ lane, batch }) => {
        try {
          await this.syncLane(lane);
          // Before the producers hear back, so that stats read after an append include its commit.
          counters.lastSyncLatencyMs = performance.now() - started;
          lane.commitBatch(batch);
        } catch (err) {
          await lane.failBatch(batch, fromFsError(err, `sync lane ${lane.name}`));
        }
      }),
    );
  }

  private async syncLane(lane: Lane): Promise<void> {
    // always mode writes through O_DSYNC: the data is durable once the write returned.
    if (this.log.opts.syncMode !== 'always') await lane.activeFile!.datasync();
    if (lane.takeDirSync()) await this.log.fs.syncDir(lane.dir);
  }

  /** interval mode: the periodic sync; also the final sync at close. */
  syncAll(): Promise<void> {
    return this.log.exclusive(async () => {
      for (const lane of this.log.lanes.values()) if (lane.activeFile) await this.syncLane(lane);
      this.log.counters.syncCount++;
    });
  }
}
