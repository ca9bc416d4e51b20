import { UplinkError } from './types.js';
import { BACKOFF_BASE_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT } from '../config/uplink-limits.js';

export { BACKOFF_BASE_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT } from '../config/uplink-limits.js';

/** Reconnect backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015). */
export interface BackoffOptions {
  /** Ceiling of the first delay, ms. Default 500. */
  baseMs?: number;
  /** Largest ceiling any delay can reach, ms. Default 60,000. */
  maxMs?: number;
  /** Growth of the ceiling per failed attempt. Default 2. */
  factor?: number;
  /** Uniform [0, 1) source; injected so tests can pin the jitter. Default Math.random. */
  random?: () => number;
}

/** The ceiling stops growing here anyway (base × factor^attempt passes any sane max); bounds the exponent. */
const BACKOFF_ATTEMPTS_COUNTED_MAX = 64;

export class Backoff {
  private readonly baseMs: number;
  private readonly maxMs: number;
  private readonly factor: number;
  private readonly random: () => number;
  private attempt = 0;

  constructor(opts: BackoffOptions = {}) {
    this.baseMs = opts.baseMs ?? BACKOFF_BASE_MS_DEFAULT;
    this.maxMs = opts.maxMs ?? BACKOFF_MAX_MS_DEFAULT;
    this.factor = opts.factor ?? 2;
    this.random = opts.random ?? Math.random;
    const bad = (message: string) => new UplinkError('INVALID', message);
    // Named as a caller writes them: PumpOptions.backoff and board.json's uplink.backoff.
    if (!(this.baseMs >= 1)) throw bad(`"backoff.baseMs" must be at least 1 ms, got ${this.baseMs}`);
    const maxWhat = `"backoff.maxMs" must be at least "backoff.baseMs" (${this.baseMs} ms)`;
    if (!(this.maxMs >= this.baseMs)) throw bad(`${maxWhat}, got ${this.maxMs}`);
    if (!(this.factor >= 1)) throw bad(`"backoff.factor" must be at least 1, got ${this.factor}`);
  }

  /** Ceiling of the next delay: base × factor^attempts, capped at max. */
  ceilingMs(): number {
    return Math.min(this.maxMs, this.baseMs * this.factor ** this.attempt);
  }

  /** True once failures have pushed the ceiling to the maximum. */
  atMax(): boolean {
    return this.ceilingMs() >= this.maxMs;
  }

  /**
   * The delay before the next attempt: uniform in [0, ceiling). Full jitter rather than equal jitter because
   * a fleet of gateways behind one cell tower loses and regains the link together; spreading them over the
   * whole window is what keeps them from reconnecting in lockstep.
   */
  nextDelayMs(): number {
    const delay = Math.floor(this.random() * this.ceilingMs());
    this.attempt = Math.min(this.attempt + 1, BACKOFF_ATTEMPTS_COUNTED_MAX);
    return delay;
  }

  /**
   * The delay after the server said it is overloaded (throttle.ts): at least `floorMs`, plus a full-jitter
   * draw over the larger of the floor and the ceiling. Not the floor alone: a throttled fleet would all come
   * back at the same instant and be throttled again; spread over the next window, most of it gets in.
   */
  throttledDelayMs(floorMs: number): number {
    const spreadMs = Math.max(floorMs, this.ceilingMs());
    const delay = floorMs + Math.floor(this.random() * spreadMs);
    this.attempt = Math.min(this.attempt + 1, BACKOFF_ATTEMPTS_COUNTED_MAX);
    return delay;
  }

  /** A uniform draw in [0, `maxMs`) from the same source, for delays that are not backoff (a link-up). */
  jitterMs(maxMs: number): number {
    return Math.floor(this.random() * maxMs);
  }

  /** After a successful connect, or when the link is known to be back. */
  reset(): void {
    this.attempt = 0;
  }
}
