import { setTimeout as sleep } from 'node:timers/promises';

/**
 * How long a test waits for a condition before it fails, ms: far above what any condition takes on a quiet
 * machine (milliseconds), so a loaded CI runner (2 cores shared by many jobs) is slow, never flaky.
 */
export const UNTIL_TIMEOUT_MS_DEFAULT = 15_000;
/** How often the condition is checked, ms: short next to every wait, long enough not to spin the loop. */
const UNTIL_POLL_MS = 10;

/** Resolves once `check()` is true; rejects naming `what` after `timeoutMs`. A bounded wait, never a sleep. */
export async function until(what: string, check: () => boolean, timeoutMs = UNTIL_TIMEOUT_MS_DEFAULT): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(UNTIL_POLL_MS);
  }
}
