import type { Clock } from '../clock.js';

/**
 * The clock TTLs are measured on. A Raspberry Pi has no real-time clock: it boots with a stale wall clock
 * and steps it, by days or years, when NTP syncs. Expiring on wall time would then drop the whole backlog
 * at once (step forward) or keep it forever (step backward). The store clock therefore advances only with
 * monotonic time and resumes after a restart from the value persisted in the last checkpoint.
 *
 * Time spent powered off is unknown on such a board, so it counts as zero, except when both the last
 * checkpoint and the current boot have an NTP-synchronised wall clock: then the real downtime is known
 * and credited once (possibly later in the run, when NTP first reports sync).
 */
export interface PersistedTime {
  storeMs: number;
  wallMs: number;
  wallSynced: boolean;
}

export class StoreClock {
  private anchorStoreMs: number;
  private readonly anchorMonoMs: number;
  private readonly persisted: PersistedTime | null;
  private downtimeCredited = false;

  constructor(
    private readonly clock: Clock,
    persisted: PersistedTime | null,
  ) {
    this.anchorMonoMs = clock.monoMs();
    this.persisted = persisted;
    this.anchorStoreMs = persisted ? persisted.storeMs : clock.wallMs();
    this.creditDowntime();
  }

  nowMs(): number {
    return this.anchorStoreMs + (this.clock.monoMs() - this.anchorMonoMs);
  }

  /** Called periodically: credits the real downtime once the wall clock is trustworthy on both ends. */
  creditDowntime(): void {
    if (this.downtimeCredited || !this.persisted?.wallSynced || !this.clock.wallSynced()) return;
    this.downtimeCredited = true;
    const wallAtOpenMs = this.clock.wallMs() - (this.clock.monoMs() - this.anchorMonoMs);
    const downtimeMs = wallAtOpenMs - this.persisted.wallMs;
    if (downtimeMs > 0) this.anchorStoreMs += downtimeMs;
  }

  snapshot(): PersistedTime {
    return { storeMs: this.nowMs(), wallMs: this.clock.wallMs(), wallSynced: this.clock.wallSynced() };
  }
}
