import assert from 'node:assert/strict';
import type { Clock } from '../clock.js';

/** A NaN or negative rate would make every wait NaN ms: a busy loop instead of a cap. */
function assertRate(bytesPerSec: number): void {
  const ok = Number.isFinite(bytesPerSec) && bytesPerSec >= 0;
  assert(ok, `token bucket rate must be >= 0 bytes/s, got ${bytesPerSec}`);
}

/**
 * A token bucket for `bytesPerSecMax` on metered cellular links. It may go into debt by one message, so a
 * message larger than a second's worth of bytes still goes out (then the bucket waits it off) instead of
 * blocking the lane forever. A rate of 0 means no cap; the rate can change live (cloud-pushed settings).
 */
export class TokenBucket {
  private tokens: number;
  private lastMs: number;
  /** Up to this many seconds of unused rate may be saved up and spent at once. */
  static readonly BURST_SECS = 1;

  constructor(
    private bytesPerSec: number,
    private readonly clock: Clock,
  ) {
    assertRate(bytesPerSec);
    this.tokens = bytesPerSec * TokenBucket.BURST_SECS;
    this.lastMs = clock.monoMs();
  }

  get rate(): number {
    return this.bytesPerSec;
  }

  /** A new cap starts with a full burst: the debt of the old rate would otherwise be paid off at the new one. */
  setRate(bytesPerSec: number): void {
    assertRate(bytesPerSec);
    // The same cap applied again (a settings document read once more) is no new cap: a refill would let a
    // second's worth of bytes through past the cap each time.
    if (bytesPerSec === this.bytesPerSec) return;
    this.bytesPerSec = bytesPerSec;
    this.tokens = bytesPerSec * TokenBucket.BURST_SECS;
    this.lastMs = this.clock.monoMs();
  }

  /** Takes `bytes` and returns 0, or returns how many ms to wait before trying again (nothing taken). */
  take(bytes: number): number {
    if (this.bytesPerSec === 0) return 0;
    const now = this.clock.monoMs();
    const capacity = this.bytesPerSec * TokenBucket.BURST_SECS;
    this.tokens = Math.min(capacity, this.tokens + ((now - this.lastMs) * this.bytesPerSec) / 1000);
    this.lastMs = now;
    if (this.tokens <= 0) return Math.ceil((-this.tokens * 1000) / this.bytesPerSec) + 1;
    this.tokens -= bytes;
    return 0;
  }
}

/** Delivered messages per second over a sliding window, for the operator's drain rate and ETA. */
export class RateMeter {
  /** The window the rate is averaged over, ms. */
  static readonly WINDOW_MS = 10_000;
  /** One sample per SAMPLE_MS at most, so the sample list stays WINDOW_MS / SAMPLE_MS + 1 long. */
  static readonly SAMPLE_MS = 1_000;
  private readonly samples: Array<{ atMs: number; total: number }> = [];
  private total = 0;

  constructor(private readonly clock: Clock) {}

  add(count: number): void {
    const now = this.clock.monoMs();
    const last = this.samples.at(-1);
    // Each sample is the running total at the start of its period, so the first delivery counts too.
    const due = last === undefined || now - last.atMs >= RateMeter.SAMPLE_MS;
    if (due) this.samples.push({ atMs: now, total: this.total });
    this.total += count;
    while (this.samples.length > 1 && now - this.samples[0]!.atMs > RateMeter.WINDOW_MS) this.samples.shift();
  }

  perSec(): number {
    const now = this.clock.monoMs();
    const first = this.samples[0];
    if (first === undefined || now - first.atMs > RateMeter.WINDOW_MS + RateMeter.SAMPLE_MS) return 0;
    const spanMs = Math.max(RateMeter.SAMPLE_MS, now - first.atMs);
    return ((this.total - first.total) * 1000) / spanMs;
  }
}
