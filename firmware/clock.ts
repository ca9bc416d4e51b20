import { existsSync } from 'node:fs';

/**
 * Time as the runtime sees it. Injected everywhere (store TTL, backoff, token expiry) so tests can step
 * the wall clock by days without touching the monotonic one, the way an RTC-less Pi does when NTP syncs.
 */
export interface Clock {
  /** Wall-clock milliseconds since the Unix epoch. May jump in either direction. */
  wallMs(): number;
  /** Monotonic milliseconds since an arbitrary origin; never jumps, resets at reboot. */
  monoMs(): number;
  /** True when the wall clock is known to be synchronised (NTP); false on a fresh RTC-less boot. */
  wallSynced(): boolean;
}

/** systemd-timesyncd touches this file once the clock is synchronised. */
const TIMESYNC_FLAG_PATH = '/run/systemd/timesync/synchronized';

export const systemClock: Clock = {
  wallMs: () => Date.now(),
  monoMs: () => performance.now(),
  wallSynced: () => existsSync(TIMESYNC_FLAG_PATH),
};
