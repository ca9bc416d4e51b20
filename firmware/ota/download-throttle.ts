import type { Clock } from '../clock.js';
import { TokenBucket } from '../uplink/rate.js';

/**
 * The uplink's bandwidth cap as a bucket to take bytes from (the pump's TokenBucket, passed in by the runtime
 * through UplinkService.bandwidth): `take` returns 0 (taken) or the ms to wait before asking again (nothing
 * taken). An interface, not the class, so firmware/ota needs nothing of the pump's.
 */
export interface BandwidthShare {
  take(bytes: number): number;
}

/**
 * Most bytes taken from a shared bucket at once: a 64 KiB socket read taken whole would put the bucket a
 * second into debt on a 64 KB/s link and hold every publish of the backlog behind it; a few KiB at a time
 * lets the pump's takes interleave with the download's.
 */
export const OTA_THROTTLE_SLICE_BYTES = 4 * 1024;

/**
 * Holds the download to the cap: with the uplink's bucket when one is given (the update and the backlog then
 * share one cap), else with a bucket of its own at `bytesPerSecMax()` (read per chunk: the cloud may change it).
 */
export class DownloadThrottle {
  private readonly own: TokenBucket | null;

  constructor(
    private readonly bytesPerSecMax: () => number,
    private readonly shared: BandwidthShare | undefined,
    clock: Clock,
    private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>,
    private readonly signal: AbortSignal | undefined,
  ) {
    this.own = shared === undefined ? new TokenBucket(bytesPerSecMax(), clock) : null;
  }

  async wait(bytes: number): Promise<void> {
    if (this.own === null) {
      for (let left = bytes; left > 0; left -= OTA_THROTTLE_SLICE_BYTES) {
        await this.take(this.shared!, Math.min(left, OTA_THROTTLE_SLICE_BYTES));
      }
      return;
    }
    const rate = this.bytesPerSecMax();
    if (rate !== this.own.rate) this.own.setRate(rate);
    await this.take(this.own, bytes);
  }

  private async take(bucket: BandwidthShare, bytes: number): Promise<void> {
    for (let waitMs = bucket.take(bytes); waitMs > 0; waitMs = bucket.take(bytes)) {
      await this.sleep(waitMs, this.signal);
    }
  }
}
