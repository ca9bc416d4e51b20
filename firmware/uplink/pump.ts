import { systemClock, type Clock } from '../clock.js';
import { Backoff, type BackoffOptions } from './backoff.js';
import { DrainSession, type DrainLimits, type PumpLane } from './drain.js';
import { RateMeter, TokenBucket } from './rate.js';
import { UplinkError, type UplinkTransport } from './types.js';

export type { PumpLane } from './drain.js';

/**
 * The drain pump: the only reader of the upstream lanes. It connects the transport, runs the resync hooks,
 * then publishes each lane in stored order with a bounded in-flight window, acking the store only over
 * contiguous broker acknowledgements. When the connection dies it re-reads from the acked cursor, so the
 * only duplicates are what was in flight. It never gives up: every failure ends in backoff and a new attempt.
 */

/**
 * The window's hard ceiling. mqtt.js's default message-id provider hands out ids 1..65,535 and wraps; a
 * window anywhere near that would reuse an id still in flight and silently lose its completion.
 */
export const INFLIGHT_MESSAGES_HARD_MAX = 4_096;
export const INFLIGHT_MESSAGES_DEFAULT = 100;

export interface PumpLaneConfig {
  lane: PumpLane;
  /** Share of the window when several lanes have backlog; a lane of weight 1 is never starved. Default 1. */
  weight?: number;
}

/** Run on every (re)connect, in order, before the drain: settings and identities, then twins. */
export interface ResyncHook {
  name: string;
  run(transport: UplinkTransport): Promise<void>;
}

export interface PumpOptions {
  /** This gateway's id; the first part of every stable message id. */
  gatewayId: string;
  transport: UplinkTransport;
  /** Lanes in priority order (first = highest); each drains in its own stored order. At least one. */
  lanes: PumpLaneConfig[];
  clock?: Clock;
  /** Publishes awaiting PUBACK at once, messages. Default 100, at most INFLIGHT_MESSAGES_HARD_MAX. */
  inflightMax?: number;
  /** Records read from a lane per read, records. Default 256. */
  readBatchRecordsMax?: number;
  /** Bytes read from a lane per read, bytes. Default 1 MiB. */
  readBatchBytesMax?: number;
  /** Contiguously acknowledged records between two store acks, records. Default 64. */
  ackBatchRecords?: number;
  /** Cap on body bytes sent per second, for metered links; 0 = none. Default 0. */
  maxBytesPerSec?: number;
  /** A connect attempt that has not succeeded by then is torn down, ms. Default 15,000. */
  connectTimeoutMs?: number;
  /** A publish unacknowledged for this long means the link is dead (a black hole); torn down, ms. Default 20,000. */
  publishTimeoutMs?: number;
  /** Longest a single resync hook may run, ms. Default 30,000. */
  resyncTimeoutMs?: number;
  backoff?: BackoffOptions;
  resyncHooks?: ResyncHook[];
  /** Backlog bytes and age from the store (RingLog.stats()); without it status counts records only. */
  backlogStats?: () => { bytes: number; oldestAgeMs: number };
  /** Every error the pump recovers from, for the log. */
  onError?: (err: Error) => void;
}

export type LinkState = 'stopped' | 'connecting' | 'resyncing' | 'up' | 'backoff';

export interface PumpStatus {
  link: LinkState;
  protocol: string;
  lastError: { message: string; code: string | null; atWallMs: number } | null;
  /** The last link-up notice (interface, modem hook, signal) and when it came. */
  lastWake: { reason: string; atWallMs: number } | null;
  /** Wall time of the current connection's start; null when not up. */
  connectedSinceWallMs: number | null;
  connects: number;
  /** Ceiling of the next backoff delay, ms. */
  backoffCeilingMs: number;
  inflight: number;
  backlog: { records: number; bytes: number | null; oldestAgeMs: number | null };
  /** Messages acknowledged per second over the last ten seconds. */
  drainRatePerSec: number;
  /** Backlog ÷ drain rate; null while nothing drains. */
  etaSecs: number | null;
}

const LIMIT_RANGES = {
  inflightMax: [1, INFLIGHT_MESSAGES_HARD_MAX, INFLIGHT_MESSAGES_DEFAULT, 'messages'],
  readBatchRecordsMax: [1, 10_000, 256, 'records'],
  readBatchBytesMax: [1_024, 64 * 1024 * 1024, 1024 * 1024, 'bytes'],
  ackBatchRecords: [1, 100_000, 64, 'records'],
  maxBytesPerSec: [0, 1024 * 1024 * 1024, 0, 'bytes/s'],
  connectTimeoutMs: [100, 600_000, 15_000, 'ms'],
  publishTimeoutMs: [100, 600_000, 20_000, 'ms'],
  resyncTimeoutMs: [100, 600_000, 30_000, 'ms'],
} as const;
type LimitName = keyof typeof LIMIT_RANGES;
/** Lanes a pump may drain; the weighted pick walks all of them per message. */
const PUMP_LANES_MAX = 16;
const LANE_WEIGHT_MAX = 1_000;

function resolveLimits(opts: PumpOptions): Record<LimitName, number> {
  const out = {} as Record<LimitName, number>;
  for (const [name, [min, max, fallback, unit]] of Object.entries(LIMIT_RANGES) as Array<[LimitName, (typeof LIMIT_RANGES)[LimitName]]>) {
    const value = opts[name] ?? fallback;
    if (!Number.isInteger(value) || value < min || value > max) {
      throw new UplinkError('INVALID', `"${name}" must be an integer from ${min} to ${max} ${unit}, got ${value}`);
    }
    out[name] = value;
  }
  return out;
}

function validateLanes(lanes: PumpLaneConfig[]): Array<{ lane: PumpLane; weight: number }> {
  if (!Array.isArray(lanes) || lanes.length === 0 || lanes.length > PUMP_LANES_MAX) {
    throw new UplinkError('INVALID', `"lanes" must list 1 to ${PUMP_LANES_MAX} lanes, got ${lanes?.length}`);
  }
  return lanes.map(({ lane, weight = 1 }) => {
    if (!Number.isInteger(weight) || weight < 1 || weight > LANE_WEIGHT_MAX) {
      throw new UplinkError('INVALID', `"weight" of lane "${lane.name}" must be an integer from 1 to ${LANE_WEIGHT_MAX}, got ${weight}`);
    }
    return { lane, weight };
  });
}

export class Pump {
  private readonly limits: Record<LimitName, number>;
  private readonly lanes: Array<{ lane: PumpLane; weight: number }>;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  private readonly delivered: RateMeter;
  private readonly bucket: TokenBucket | null;
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
  private watchdog: NodeJS.Timeout | null = null;

  constructor(private readonly opts: PumpOptions) {
    if (!opts.gatewayId) throw new UplinkError('INVALID', '"gatewayId" must be a non-empty string');
    this.limits = resolveLimits(opts);
    this.lanes = validateLanes(opts.lanes);
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff(opts.backoff);
    this.delivered = new RateMeter(this.clock);
    this.bucket = this.limits.maxBytesPerSec > 0 ? new TokenBucket(this.limits.maxBytesPerSec, this.clock) : null;
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
      inflight: this.session?.inflight ?? 0,
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
        if (destroy) void this.opts.transport.destroy();
        reject(new UplinkError('TIMEOUT', `${what} took longer than ${timeoutMs} ms`));
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
    return new Promise((resolve) => {
      const timer = setTimeout(finish, ms);
      const self = this;
      function finish(): void {
        clearTimeout(timer);
        self.interruptSleep = null;
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
