/**
 * The pump's backoff sleep. A stop ends it at once; a link-up wake shortens it to a small random delay
 * (pump.ts); its planned end is shown in status. One sleep at a time: the pump's loop is the only sleeper.
 */
export class BackoffSleep {
  private timer: NodeJS.Timeout | null = null;
  private finish: (() => void) | null = null;
  private untilMonoMs: number | null = null;
  /** Where the last sleep was planned to end, kept after it ended (null before the first). */
  private lastUntilMonoMs: number | null = null;
  /** Whether the sleep under way follows a throttling answer (a wake does not shorten those). */
  private throttledNow = false;

  constructor(private readonly monoMs: () => number) {}

  /** Time left in the sleep under way, ms; null when not sleeping. */
  leftMs(): number | null {
    return this.untilMonoMs === null ? null : Math.max(0, this.untilMonoMs - this.monoMs());
  }

  /** Monotonic time the sleep under way, or the last one, was planned to end; null before the first sleep. */
  get plannedEndMonoMs(): number | null {
    return this.lastUntilMonoMs;
  }

  get throttled(): boolean {
    return this.finish !== null && this.throttledNow;
  }

  sleep(ms: number, throttled: boolean): Promise<void> {
    this.interrupt();
    this.throttledNow = throttled;
    return new Promise((resolve) => {
      this.finish = () => {
        if (this.timer !== null) clearTimeout(this.timer);
        this.timer = null;
        this.finish = null;
        this.untilMonoMs = null;
        resolve();
      };
      this.arm(ms);
    });
  }

  /** Ends the sleep under way now. */
  interrupt(): void {
    this.finish?.();
  }

  /** Ends the sleep under way within `ms` from now; never later than it was to end anyway. */
  shorten(ms: number): void {
    if (this.finish === null || this.untilMonoMs === null) return;
    if (this.monoMs() + ms < this.untilMonoMs) this.arm(ms);
  }

  private arm(ms: number): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.untilMonoMs = this.monoMs() + ms;
    this.lastUntilMonoMs = this.untilMonoMs;
    const finish = this.finish!;
    this.timer = setTimeout(finish, ms);
  }
}
