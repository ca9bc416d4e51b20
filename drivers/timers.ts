/** Cancels a scheduled callback; calling it after the callback ran does nothing. */
export type CancelTimer = () => void;

/**
 * Timers, injected next to the Clock so debounce, polling and retry backoff can be stepped in tests.
 * Contract: a callback runs at most once, never before `ms` have passed, and never after it was cancelled.
 */
export interface Timers {
  setTimeout(callback: () => void, ms: number): CancelTimer;
}

export const realTimers: Timers = {
  setTimeout(callback, ms) {
    const timer = setTimeout(callback, ms);
    return () => clearTimeout(timer);
  },
};
