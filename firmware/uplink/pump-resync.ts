import type { ResyncHook } from './pump-options.js';
import { deadline } from './timers.js';
import { UplinkError, type UplinkTransport } from './types.js';

/**
 * The resync hooks of one connection, run in order before the drain. A hook that fails or overruns
 * resyncTimeoutMs is reported and skipped: telemetry must not wait on a twin bug. A connection lost
 * meanwhile ends the wait for the hook still running; it is left to fail on the dead connection.
 */
export class ResyncHooks {
  /** Set while a hook runs: ends the wait for it at once. */
  private abandonCurrent: (() => void) | null = null;

  constructor(
    private readonly hooks: readonly ResyncHook[],
    private readonly timeoutMs: number,
    private readonly reportError: (err: unknown) => void,
  ) {}

  /** The connection the hooks run on is gone. */
  abandon(): void {
    this.abandonCurrent?.();
  }

  /** Runs every hook on `transport` until one returns with `over()` true. */
  async run(transport: UplinkTransport, over: () => boolean): Promise<void> {
    for (const hook of this.hooks) {
      if (over()) break;
      const lost = new Promise<void>((resolve) => (this.abandonCurrent = resolve));
      const what = `resync hook "${hook.name}" took longer than ${this.timeoutMs} ms`;
      const work = deadline(hook.run(transport), this.timeoutMs, () => new UplinkError('TIMEOUT', what));
      try {
        await Promise.race([work, lost]);
      } catch (err) {
        this.reportError(err);
      } finally {
        this.abandonCurrent = null;
      }
    }
  }
}
