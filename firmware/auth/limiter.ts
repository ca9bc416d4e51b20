import type { Clock } from '../clock.js';

/**
 * Counts failed authentication attempts per key (client id, remote address) in a fixed window on the
 * monotonic clock; past `failuresMax` the key is refused until its window ends. The table is bounded:
 * past `keysMax` the oldest entry is forgotten, which at worst lets one attacker retry a little sooner.
 */
export class FailureLimiter {
  private readonly windows = new Map<string, { startMonoMs: number; failures: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly failuresMax: number,
    private readonly windowMs: number,
    private readonly keysMax: number,
  ) {}

  blocked(key: string): boolean {
    const entry = this.current(key);
    return entry !== undefined && entry.failures >= this.failuresMax;
  }

  fail(key: string): void {
    const entry = this.current(key);
    if (entry !== undefined) {
      entry.failures += 1;
      return;
    }
    if (this.windows.size >= this.keysMax) this.windows.delete(this.windows.keys().next().value as string);
    this.windows.set(key, { startMonoMs: this.clock.monoMs(), failures: 1 });
  }

  private current(key: string): { startMonoMs: number; failures: number } | undefined {
    const entry = this.windows.get(key);
    if (entry === undefined) return undefined;
    if (this.clock.monoMs() - entry.startMonoMs >= this.windowMs) {
      this.windows.delete(key);
      return undefined;
    }
    return entry;
  }
}
