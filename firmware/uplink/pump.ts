import { systemClock, type Clock } from '../clock.js';
import { Backoff } from './backoff.js';
import { DrainSession, type DrainLimits, type PumpLane } from './drain.js';
import {
  checkLimit,
  resolveLimits,
  validateLanes,
  type LimitName,
  type LinkState,
  type PumpOptions,
  type PumpStatus,
} from './pump-options.js';
import { RateMeter, TokenBucket } from './rate.js';
import { UplinkError } from './types.js';

export type { PumpLane } from './drain.js';
export {
  INFLIGHT_MESSAGES_DEFAULT,
  INFLIGHT_MESSAGES_HARD_MAX,
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
  private connectedSinceWallMs: number | null = null;
  private connects = 0;
  private session: DrainSession | null = null;
  private loop: Promise<void> | null = null;
  private stopping = false;
  /** Set by wake() while connecting: the attempt in progress is abandoned and the next one starts at once. */
  private skipBackoff = false;
  private interruptSleep: (() => void) | null = null;
  /** Monotonic time the current backoff sleep ends; null when not sleeping. */
  private sleepUntilMonoMs: number | null = null;
  private watchdog: NodeJS.Timeout | null = null;

  constructor(private readonly opts: PumpOptions) {
    if (!opts.gatewayId) throw new UplinkError('INVALID', '"gatewayId" must be a non-empty string');
    this.limits = resolveLimits(opts);
    this.lanes = validateLanes(opts.lanes);
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff(opts.backoff);
    this.delivered = new RateMeter(this.clock);
    this.bucket = new TokenBucket(this.limits.maxBytesPerSec, this.clock);
    opts.transport.onDisconnect((cause) => this.session?.end(cause));
  }

  start(): void {
    if (this.loop !== null) throw new UplinkError('INVALID', 'the pump is already running');
    this.stopping = false;
    this.loop = this.run();
  }

  /**
   * The link is back (interface up, modem hook, SIGUSR2): forget the backoff and connect now. An attempt
   * already under way began while the link was down, so it is abandoned rather than waited out.
   */
  wake(reason = 'wake'): void {
    if (this.stopping) return;
    this.backoff.reset();
    if (this.link === 'backoff') this.interruptSleep?.();
    if (this.link === 'connecting') {
      this.skipBackoff = true;
      void this.opts.transport.destroy();
    }
    this.lastWake = { reason, atWallMs: this.clock.wallMs() };
  }

  /** Changes the bandwidth cap live (cloud-pushed settings); 0 lifts it. Validated as the option is. */
  setMaxBytesPerSec(bytesPerSec: number): void {
    this.limits.maxBytesPerSec = checkLimit('maxBytesPerSec', bytesPerSec);
    this.bucket.setRate(bytesPerSec);
    this.session?.rateChanged();
  }

  /** Stops taking records, lets in-flight publishes finish (bounded by publishTimeoutMs), acks, closes. */
  async stop(): Promise<void> {
    if (this.loop === null) return;
    this.stopping = true;
    this.interruptSleep?.();
    const session = this.session;
    if (session !== null) {
      session.pause();
      const timer = setTimeout(() => void this.opts.transport.destroy(), this.limits.publishTimeoutMs);
      await session.quiesce();
      clearTimeout(timer);
      session.end();
    } else {
      await this.opts.transport.destroy();
    }
    await this.loop;
    await this.opts.transport.close();
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
      connectedSinceWallMs: this.connectedSinceWallMs,
      connects: this.connects,
      backoffCeilingMs: this.backoff.ceilingMs(),
      retryInMs: this.sleepUntilMonoMs === null ? null : Math.max(0, this.sleepUntilMonoMs - this.clock.monoMs()),
      inflight: this.session?.inflight ?? 0,
      maxBytesPerSec: this.limits.maxBytesPerSec,
      backlog: { records, bytes: extra?.bytes ?? null, oldestAgeMs: extra?.oldestAgeMs ?? null },
      drainRatePerSec: rate,
      etaSecs: rate > 0 ? records / rate : records === 0 ? 0 : null,
    };
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      try {
        await this.connect();
        await this.resync();
        await this.drain();
      } catch (err) {
        this.reportError(err);
      }
      this.connectedSinceWallMs = null;
      // On stop the connection is left for stop() to close politely (MQTT DISCONNECT).
      if (this.stopping) break;
      await this.opts.transport.destroy();
      if (this.skipBackoff) this.skipBackoff = false;
      else await this.sleep(this.backoff.nextDelayMs());
    }
  }

  private async connect(): Promise<void> {
    this.link = 'connecting';
    await this.guard(this.opts.transport.connect(), this.limits.connectTimeoutMs, 'connect');
    this.backoff.reset();
    this.connects += 1;
    this.connectedSinceWallMs = this.clock.wallMs();
  }

  /** A hook that fails is reported and skipped: telemetry must not wait on a twin bug. */
  private async resync(): Promise<void> {
    this.link = 'resyncing';
    for (const hook of this.opts.resyncHooks ?? []) {
      if (this.stopping) return;
      try {
        await this.guard(hook.run(this.opts.transport), this.limits.resyncTimeoutMs, `resync hook "${hook.name}"`, false);
      } catch (err) {
        this.reportError(err);
      }
    }
  }

  private async drain(): Promise<void> {
    if (this.stopping) return;
    this.link = 'up';
    const session = new DrainSession(
      {
        transport: this.opts.transport,
        clock: this.clock,
        gatewayId: this.opts.gatewayId,
        limits: this.limits as DrainLimits,
        delivered: this.delivered,
        bucket: this.bucket,
        reportError: (err) => this.reportError(err),
      },
      this.lanes,
    );
    this.session = session;
    this.startWatchdog(session);
    try {
      await session.run();
    } finally {
      this.stopWatchdog();
      this.session = null;
    }
  }

  /** A publish outstanding past publishTimeoutMs means packets vanish (black hole): tear down, start over. */
  private startWatchdog(session: DrainSession): void {
    const periodMs = Math.max(50, Math.floor(this.limits.publishTimeoutMs / 4));
    this.watchdog = setInterval(() => {
      const sentAtMs = session.oldestInflightSentAtMs();
      if (sentAtMs === null || this.clock.monoMs() - sentAtMs < this.limits.publishTimeoutMs) return;
      session.end(new UplinkError('TIMEOUT', `no PUBACK for ${this.limits.publishTimeoutMs} ms; tearing the connection down`));
    }, periodMs);
  }

  private stopWatchdog(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  /** Races `work` against a timeout; on timeout the connection is torn down so `work` cannot linger. */
  private async guard(work: Promise<void>, timeoutMs: number, what: string, destroy = true): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        // Rejected before the destroy: the race must report the timeout, not the "destroyed" it causes.
        reject(new UplinkError('TIMEOUT', `${what} took longer than ${timeoutMs} ms`));
        if (destroy) void this.opts.transport.destroy();
      }, timeoutMs);
    });
    try {
      await Promise.race([work, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private sleep(ms: number): Promise<void> {
    this.link = 'backoff';
    this.sleepUntilMonoMs = this.clock.monoMs() + ms;
    return new Promise((resolve) => {
      const timer = setTimeout(finish, ms);
      const self = this;
      function finish(): void {
        clearTimeout(timer);
        self.interruptSleep = null;
        self.sleepUntilMonoMs = null;
        resolve();
      }
      this.interruptSleep = finish;
    });
  }

  private reportError(err: unknown): void {
    const error = err instanceof Error ? err : new Error(String(err));
    const code = error instanceof UplinkError ? error.code : null;
    this.lastError = { message: error.message, code, atWallMs: this.clock.wallMs() };
    this.opts.onError?.(error);
  }
}
