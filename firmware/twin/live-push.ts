/**
 * Pushes pending reported patches while the link is up, instead of waiting for the next reconnect: a patch
 * schedules a push after REPORTED_PUSH_DELAY_MS (patches in that window go together), and pushes never
 * overlap, so a patch is never sent twice by a live push racing a resync. A failed push leaves the patches
 * pending for the next one.
 */

/** Reported patches arriving within this window go up in one push, ms. */
export const REPORTED_PUSH_DELAY_MS = 200;

import type { TwinStore } from './store.js';

export class LivePush {
  private timer: NodeJS.Timeout | null = null;
  private chain: Promise<void> = Promise.resolve();
  private readonly unsubscribe: () => void;

  /**
   * Every reported patch in `store` schedules `push` while `isLive()`; `push` sends what is pending, or does
   * nothing when the channel went away meanwhile.
   */
  constructor(
    store: TwinStore,
    isLive: () => boolean,
    private readonly push: () => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {
    this.unsubscribe = store.onReported(() => {
      if (isLive()) this.schedule();
    });
  }

  schedule(): void {
    if (this.timer !== null) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      this.serial(this.push).catch(this.onError);
    }, REPORTED_PUSH_DELAY_MS);
  }

  /** Runs `work` after any push under way; resyncs push through here too. */
  serial(work: () => Promise<void>): Promise<void> {
    const run = this.chain.then(work);
    this.chain = run.catch(() => {});
    return run;
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  /** No more pushes, and no more listening to the store. */
  close(): void {
    this.cancel();
    this.unsubscribe();
  }
}
