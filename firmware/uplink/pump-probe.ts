import type { Clock } from '../clock.js';
import type { PumpSession } from './drain-host.js';
import type { PumpStatus } from './pump-options.js';
import { UplinkError, type UplinkTransport } from './types.js';

/**
 * Shortest period of the publish watchdog, ms: it looks four times per publishTimeoutMs, but a test's
 * short timeout must not turn it into a busy loop.
 */
const WATCHDOG_PERIOD_MS_MIN = 50;

/**
 * Asks a connection that looks up whether it still is (PINGREQ): after a link-up notice, and when a publish
 * has waited publishTimeoutMs for its PUBACK. One probe at a time: a wake storm (a hook in a loop) must not
 * become a PINGREQ storm.
 */
export class LinkProbe {
  private probing = false;
  private watchdog: NodeJS.Timeout | null = null;
  private lastProbe: PumpStatus['lastProbe'] = null;

  constructor(
    private readonly transport: UplinkTransport,
    private readonly clock: Clock,
    private readonly limits: { readonly probeTimeoutMs: number; readonly publishTimeoutMs: number },
  ) {}

  get last(): PumpStatus['lastProbe'] {
    return this.lastProbe;
  }

  /** Whether the link answered within probeTimeoutMs; null when a probe is already out. */
  async probe(): Promise<boolean | null> {
    if (this.probing) return null;
    this.probing = true;
    const answered = await this.transport.probe(this.limits.probeTimeoutMs);
    this.probing = false;
    this.lastProbe = { answered, atWallMs: this.clock.wallMs() };
    return answered;
  }

  /**
   * After a link-up notice: the error to reconnect with when the link did not answer and `stillCurrent()`
   * (the probed connection is still the pump's); null when it answered or no probe went out.
   */
  async probeAfterWake(stillCurrent: () => boolean): Promise<UplinkError | null> {
    const answered = await this.probe();
    if (answered !== false || !stillCurrent()) return null;
    const what = `no answer to a probe within ${this.limits.probeTimeoutMs} ms after a link-up notice; reconnecting`;
    return new UplinkError('TIMEOUT', what);
  }

  /**
   * A publish outstanding past publishTimeoutMs: either packets vanish (a black hole) or the broker dropped
   * that one message without a word (mosquitto over its message_size_limit). A probe tells them apart; only
   * the second costs the message an attempt. Either way the session ends and the drain starts over.
   */
  watch(session: PumpSession): void {
    const timeoutMs = this.limits.publishTimeoutMs;
    const periodMs = Math.max(WATCHDOG_PERIOD_MS_MIN, Math.floor(timeoutMs / 4));
    this.watchdog = setInterval(() => {
      const sentAtMs = session.oldestInflightSentAtMs();
      if (this.probing || sentAtMs === null || this.clock.monoMs() - sentAtMs < timeoutMs) return;
      void this.probe().then((alive) => {
        if (alive === null) return;
        const why = alive ? 'the broker answers pings, so it dropped the message' : 'the link does not answer';
        const what = `no PUBACK for ${timeoutMs} ms (${why}); tearing the connection down`;
        session.end(new UplinkError('TIMEOUT', what), alive ? 'no-puback' : undefined);
      });
    }, periodMs);
  }

  unwatch(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }
}
