/**
 * The publish rate limit of one child: a token bucket on the monotonic clock, `publishBurst` at once and
 * `publishRatePerSec` sustained. A child past its tokens is first slowed down, not cut: its publish waits
 * until the bucket would have had a token (the PUBACK comes that much later, and aedes reads nothing more
 * from the socket meanwhile), so a client that waits for its acknowledgements settles at the rate. Only a
 * child that runs more than `publishBurst` messages ahead of the bucket — one that does not wait — is refused.
 */

export interface RateLimits {
  publishRatePerSec: number;
  publishBurst: number;
}

/** 'refuse', or how long to hold the publish before serving it, ms (0: at once). */
export type ThrottleVerdict = number | 'refuse';

export class PublishThrottle {
  /** May go down to -publishBurst: the messages held back, waiting for the bucket to refill. */
  private tokens: number;
  private refillMonoMs: number;

  constructor(
    private readonly limits: RateLimits,
    nowMonoMs: number,
  ) {
    this.tokens = limits.publishBurst;
    this.refillMonoMs = nowMonoMs;
  }

  take(nowMonoMs: number): ThrottleVerdict {
    const { publishBurst, publishRatePerSec } = this.limits;
    this.tokens = Math.min(publishBurst, this.tokens + ((nowMonoMs - this.refillMonoMs) * publishRatePerSec) / 1000);
    this.refillMonoMs = nowMonoMs;
    if (this.tokens - 1 < -publishBurst) return 'refuse';
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / publishRatePerSec);
  }
}
