import { systemClock, type Clock } from '../clock.js';
import { Backoff } from './backoff.js';
import { AttemptLedger, DeadLetters } from './dead-letter.js';
import type { PumpSession } from './drain-host.js';
import type { PumpLane } from './drain.js';
import {
  PUMP_STOP_BUDGET_MS_DEFAULT,
  STOP_CLOSE_RESERVE_MS,
  checkLimit,
  resolveLimits,
  validateLanes,
  type LimitName,
  type LinkState,
  type PumpOptions,
  type PumpStatus,
} from './pump-options.js';
import { LinkProbe } from './pump-probe.js';
import { ResyncHooks } from './pump-resync.js';
import { ConnectionTimes, guarded, startSession } from './pump-session.js';
import { RateMeter, TokenBucket } from './rate.js';
import type { LossRecovery } from './recovery.js';
import { BackoffSleep } from './sleeper.js';
import { THROTTLED_BACKOFF_MS_MIN, ThrottleCounter } from './throttle.js';
import { within } from './timers.js';
import { UplinkError } from './types.js';

export {
  LINK_UP_JITTER_MS_MAX_DEFAULT,
  type LinkState,
  type PumpLaneConfig,
  type PumpOptions,
  type PumpStatus,
  type ResyncHook,
} from './pump-options.js';

/**
 * The drain pump: the only reader of the upstream lanes. It connects the transport, runs the resync hooks,
 * then publishes each lane in stored order with a bounded in-flight window, acking the store only over
 * contiguous broker acknowledgements. When the connection dies it re-reads from the acked cursor, so the
 * only duplicates are what was in flight. It never gives up: every failure ends in backoff and a new attempt.
 */

export class Pump {
  private readonly limits: Record<LimitName, number>;
  private readonly lanes: Array<{ lane: PumpLane; weight: number }>;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly delivered: RateMeter;
  private readonly bucket: TokenBucket;
  private link: LinkState = 'stopped';
  private lastError: PumpStatus['lastError'] = null;
  private lastWake: PumpStatus['lastWake'] = null;
  private readonly times: ConnectionTimes;
  private session: PumpSession | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  /** Set by wake() while connecting: the attempt in progress is abandoned and the next one follows this soon. */
  private wakeDelayMs: number | null = null;
  private readonly sleeper: BackoffSleep;
  private readonly throttles: ThrottleCounter;
  private readonly prober: LinkProbe;
  /** Carried from a connection lost with messages in flight to the next (recovery.ts). */
  private recovery: LossRecovery | null = null;
  /** The loss of the current connection while it was still connecting or resyncing; null while it lives. */
  private lostBeforeDrain: Error | null = null;
  private readonly hooks: ResyncHooks;
  private readonly ledger: AttemptLedger;
  private readonly deadLetters: DeadLetters | null;

  constructor(private readonly opts: PumpOptions) {
    if (!opts.gatewayId) throw new UplinkError('INVALID', '"gatewayId" must be a non-empty string');
    this.limits = resolveLimits(opts);
    this.lanes = validateLanes(opts.lanes);
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff(opts.backoff);
    this.sleeper = new BackoffSleep(() => this.clock.monoMs());
    this.throttles = new ThrottleCounter(() => this.clock.wallMs());
    this.delivered = new RateMeter(this.clock);
    this.times = new ConnectionTimes(this.clock);
    this.hooks = new ResyncHooks(opts.resyncHooks ?? [], this.limits.resyncTimeoutMs, (err) => this.reportError(err));
    this.prober = new LinkProbe(opts.transport, this.clock, this.limits);
    this.bucket = new TokenBucket(this.limits.bytesPerSecMax, this.clock);
    const box = opts.deadLetterLane;
    this.deadLetters = box === undefined ? null : new DeadLetters(box, () => this.clock.wallMs());
    this.ledger = new AttemptLedger(box === undefined ? Infinity : this.limits.publishAttemptsMax);
    // Our own teardowns (CLOSED) end the session first; any other loss is the broker's or the link's.
    opts.transport.onDisconnect((cause) => {
      const ours = cause instanceof UplinkError && cause.code === 'CLOSED';
      if (this.session !== null) return this.session.end(cause, ours ? undefined : 'connection-lost');
      // Before the drain there is no session to end: without this the drain would start on a dead
      // connection and, with nothing to publish, report the link up until the next record came.
      this.lostBeforeDrain = cause;
      this.hooks.abandon();
    });
  }

  start(): void {
    if (this.loop !== null) throw new UplinkError('INVALID', 'the pump is already running');
    this.stopping = false;
    this.loop = this.run();
  }

  /**
   * The link is back (interface up, modem hook, SIGUSR2): forget the backoff and connect within a random
   * delay below linkUpJitterMsMax, so a fleet whose links return in the same second does not meet the
   * broker in the same millisecond. An attempt already under way began while the link was down, so it is
   * abandoned rather than waited out. A sleep after a throttling answer is kept: the server is busy whatever
   * the link does. A connection that looks up may have died in the outage without a FIN (a black hole): it
   * is probed, and replaced if it does not answer, instead of waiting out publishTimeoutMs.
   */
  wake(reason = 'wake'): void {
    if (this.stopping) return;
    const delayMs = this.backoff.jitterMs(this.limits.linkUpJitterMsMax);
    if (!this.sleeper.throttled) this.backoff.reset();
    if (this.link === 'backoff' && !this.sleeper.throttled) this.sleeper.shorten(delayMs);
    if (this.link === 'connecting') {
      this.wakeDelayMs = delayMs;
      void this.opts.transport.destroy();
    }
    if (this.link === 'up' || this.link === 'resyncing') void this.probeAfterWake();
    this.lastWake = { reason, atWallMs: this.clock.wallMs() };
  }

  private async probeAfterWake(): Promise<void> {
    const connects = this.times.connects;
    // A connection made since the probe went out is not the one that failed it.
    const err = await this.prober.probeAfterWake(() => !this.stopping && connects === this.times.connects);
    if (err === null) return;
    this.reportError(err);
    this.wakeDelayMs = this.backoff.jitterMs(this.limits.linkUpJitterMsMax);
    this.session?.end(err);
    void this.opts.transport.destroy();
  }

  /** The cap's bucket, for what else goes over the same link (an OTA download) to take its bytes from too. */
  get bandwidth(): Pick<TokenBucket, 'take'> {
    return this.bucket;
  }

  /** Changes the bandwidth cap live (cloud-pushed settings); 0 lifts it. Validated as the option is. */
  setBytesPerSecMax(bytesPerSec: number): void {
    this.limits.bytesPerSecMax = checkLimit('bytesPerSecMax', bytesPerSec);
    this.bucket.setRate(bytesPerSec);
    this.session?.rateChanged();
  }

  /**
   * Stops taking records, lets in-flight publishes finish, acks, says goodbye — all within `budgetMs`, on any
   * link. What is still in flight when the budget runs short is abandoned: it was never acked, so it goes
   * again after the restart (at-least-once).
   */
  async stop(budgetMs = PUMP_STOP_BUDGET_MS_DEFAULT): Promise<void> {
    if (this.loop === null) return;
    const deadline = this.clock.monoMs() + budgetMs;
    const left = () => Math.max(0, deadline - this.clock.monoMs());
    this.stopping = true;
    this.sleeper.interrupt();
    const session = this.session;
    if (session !== null) {
      session.pause();
      const quiesceMs = Math.min(this.limits.publishTimeoutMs, left() - STOP_CLOSE_RESERVE_MS);
      const quiesced = await within(session.quiesce(), quiesceMs);
      session.end();
      if (!quiesced) await this.opts.transport.destroy();
    } else {
      await this.opts.transport.destroy();
    }
    // A resync hook may still be running (bounded by resyncTimeoutMs, longer than a stop): not waited out.
    await within(this.loop, left());
    if (!(await within(this.opts.transport.close(), left()))) await this.opts.transport.destroy();
    this.loop = null;
    this.link = 'stopped';
  }

  status(): PumpStatus {
    let records = 0;
    for (const { lane } of this.lanes) records += Math.max(0, lane.lastDurableSeq() - lane.ackedSeq());
    const extra = this.opts.backlogStats?.();
    const rate = this.delivered.perSec();
    return {
      link: this.link,
      protocol: this.opts.transport.protocol,
      lastError: this.lastError,
      lastWake: this.lastWake,
      lastProbe: this.prober.last,
      connectedSinceWallMs: this.times.sinceWallMs,
      connects: this.times.connects,
      backoffCeilingMs: this.backoff.ceilingMs(),
      retryInMs: this.sleeper.leftMs(),
      inflight: this.session?.inflight ?? 0,
      windowMax: this.session?.windowMax ?? null,
      deadLetters: this.deadLetters?.status() ?? { total: 0, byReason: {}, last: null },
      throttled: this.throttles.status(),
      bytesPerSecMax: this.limits.bytesPerSecMax,
      backlog: { records, bytes: extra?.bytes ?? null, oldestAgeMs: extra?.oldestAgeMs ?? null },
      drainRatePerSec: rate,
      etaSecs: rate > 0 ? records / rate : records === 0 ? 0 : null,
    };
  }

  /**
   * Monotonic time (the pump's clock) the last backoff sleep was planned to end, which is when the connect
   * after it was due; null before any. For a simulation playing many gateways in one process (bench/fleet),
   * where the process's own CPU, not the uplink, would otherwise decide when each connect is seen to start.
   */
  get connectDueAtMonoMs(): number | null {
    return this.sleeper.plannedEndMonoMs;
  }

  /**
   * A fleet that power-cycles together (a site's power comes back) boots in the same second, and each
   * gateway's first connect would meet the broker with all the others': it waits a random delay below
   * bootJitterMsMax first. A sleep like a backoff: a stop ends it, a link-up wake shortens it, status shows it.
   */
  private async bootDelay(): Promise<void> {
    this.link = 'backoff';
    await this.sleeper.sleep(this.backoff.jitterMs(this.limits.bootJitterMsMax), false);
  }

  private async run(): Promise<void> {
    // Not awaited when 0: the first connect starts within start(), as status then shows.
    if (this.limits.bootJitterMsMax > 0) await this.bootDelay();
    while (!this.stopping) {
      let throttled = false;
      try {
        await this.connect();
        await this.resync();
        await this.drain();
      } catch (err) {
        throttled = this.throttles.note(err) !== null;
        this.reportError(err);
      }
      if (this.times.closed(this.limits.stableConnectionMs)) this.backoff.reset();
      // On stop the connection is left for stop() to close politely (MQTT DISCONNECT).
      if (this.stopping) break;
      await this.opts.transport.destroy();
      await this.backOff(throttled);
    }
  }

  /** A throttling answer outweighs a wake that came meanwhile: the server, not the link, said wait. */
  private async backOff(throttled: boolean): Promise<void> {
    const wakeDelayMs = this.wakeDelayMs;
    this.wakeDelayMs = null;
    if (this.stopping) return;
    this.link = 'backoff';
    if (throttled) await this.sleeper.sleep(this.backoff.throttledDelayMs(THROTTLED_BACKOFF_MS_MIN), true);
    else if (wakeDelayMs !== null) await this.sleeper.sleep(wakeDelayMs, false);
    else await this.sleeper.sleep(this.backoff.nextDelayMs(), false);
  }

  private async connect(): Promise<void> {
    this.link = 'connecting';
    const connecting = this.opts.transport.connect();
    // Cleared after the call, not before: connect() tears down any connection it replaces synchronously,
    // and that loss is not this connection's. From here on every loss is.
    this.lostBeforeDrain = null;
    await guarded(this.opts.transport, connecting, this.limits.connectTimeoutMs, 'connect');
    // Not reset here: a broker that accepts and then drops each connection must still see the backoff grow.
    this.times.opened();
  }

  /** The next connection runs every hook again, however this one's ended (see ResyncHooks). */
  private async resync(): Promise<void> {
    this.link = 'resyncing';
    await this.hooks.run(this.opts.transport, () => this.stopping || this.lostBeforeDrain !== null);
    const cause = this.lostBeforeDrain;
    // Our own teardown (CLOSED: a stop, a failed probe) was reported by whoever did it.
    if (cause === null || this.stopping || (cause instanceof UplinkError && cause.code === 'CLOSED')) return;
    throw new UplinkError('DISCONNECTED', `connection lost before the drain began: ${cause.message}`, { cause });
  }

  private async drain(): Promise<void> {
    if (this.stopping || this.lostBeforeDrain !== null) return;
    this.link = 'up';
    const session = startSession(this.opts, this.lanes, {
      clock: this.clock,
      limits: this.limits,
      recovery: this.recovery,
      ledger: this.ledger,
      deadLetters: this.deadLetters,
      delivered: this.delivered,
      bucket: this.bucket,
      reportError: (err) => this.reportError(err),
    });
    this.session = session;
    this.prober.watch(session);
    try {
      await session.run();
    } finally {
      this.prober.unwatch();
      this.recovery = session.recoveryAfter;
      this.session = null;
    }
  }

  private reportError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    const code = error instanceof UplinkError ? error.code : null;
    this.lastError = { message: error.message, code, atWallMs: this.clock.wallMs() };
    this.opts.onError?.(error);
  }
}
