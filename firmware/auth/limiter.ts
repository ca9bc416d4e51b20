import type { Clock } from '../clock.js';

/**
 * Counts failed authentication attempts per key in a fixed window on the monotonic clock; past `failuresMax`
 * the key is refused until its window ends. The authenticator keys it on (client id, address), so failures
 * sent from elsewhere with a victim's client id never lock the victim out. The table is bounded: past
 * `keysMax` the oldest entry is forgotten, which at worst lets one attacker retry a little sooner.
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
    forgetOldest(this.windows, this.keysMax);
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

/** First wait once an address is past its failures, ms: long enough to slow a spray, short for a sibling. */
const ADDRESS_BACKOFF_MS_MIN = 1_000;

/**
 * Slows an address that keeps failing (many client ids, e.g. a spray of random ids) without locking it out:
 * past `failuresMax` failures in the window, each further failure doubles the time the address must wait,
 * from 1 s up to `backoffMsMax`. Many children can share one address (NAT, a docker bridge), so a client
 * that has authenticated from that address before (`trust`) never waits for the failures of its siblings;
 * a new one waits at most the current backoff, never a whole window.
 */
export class AddressBackoff {
  private readonly addresses = new Map<string, { lastFailMonoMs: number; failures: number; untilMonoMs: number }>();
  private readonly trusted = new Set<string>();

  constructor(
    private readonly clock: Clock,
    private readonly failuresMax: number,
    private readonly windowMs: number,
    private readonly backoffMsMax: number,
    private readonly keysMax: number,
  ) {}

  /** True while `address` is waiting and `clientKey` (client id + address) has never succeeded from it. */
  waiting(address: string, clientKey: string): boolean {
    if (this.trusted.has(clientKey)) return false;
    const entry = this.current(address);
    return entry !== undefined && this.clock.monoMs() < entry.untilMonoMs;
  }

  fail(address: string): void {
    const now = this.clock.monoMs();
    let entry = this.current(address);
    if (entry === undefined) {
      forgetOldest(this.addresses, this.keysMax);
      entry = { lastFailMonoMs: now, failures: 0, untilMonoMs: 0 };
      this.addresses.set(address, entry);
    }
    entry.failures += 1;
    entry.lastFailMonoMs = now;
    const excess = entry.failures - this.failuresMax;
    // 2^20 s is far past any cap; the bound keeps the exponent from overflowing to Infinity.
    const waitMs = Math.min(ADDRESS_BACKOFF_MS_MIN * 2 ** Math.min(excess - 1, 20), this.backoffMsMax);
    if (excess > 0) entry.untilMonoMs = now + waitMs;
  }

  succeed(clientKey: string): void {
    this.trusted.delete(clientKey);
    forgetOldest(this.trusted, this.keysMax);
    this.trusted.add(clientKey);
  }

  /** An address forgets its failures a window after its last one. */
  private current(address: string) {
    const entry = this.addresses.get(address);
    if (entry === undefined) return undefined;
    const keptMs = Math.max(this.windowMs, entry.untilMonoMs - entry.lastFailMonoMs);
    if (this.clock.monoMs() - entry.lastFailMonoMs >= keptMs) {
      this.addresses.delete(address);
      return undefined;
    }
    return entry;
  }
}

function forgetOldest(table: Map<string, unknown> | Set<string>, keysMax: number): void {
  if (table.size >= keysMax) table.delete(table.keys().next().value as string);
}
