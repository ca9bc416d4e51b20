import type { Clock } from '../clock.js';
import type { AttemptLedger, DeadLetters } from './dead-letter.js';
import type { DrainHost, DrainLimits, PumpSession } from './drain-host.js';
import { DrainSession, type PumpLane } from './drain.js';
import type { LimitName, PumpOptions } from './pump-options.js';
import type { RateMeter, TokenBucket } from './rate.js';
import type { LossRecovery } from './recovery.js';
import { deadline } from './timers.js';
import { UplinkError, type UplinkTransport } from './types.js';

/** What the pump carries from one connection to the next and hands each drain session. */
export interface SessionParts {
  readonly clock: Clock;
  readonly limits: Record<LimitName, number>;
  readonly recovery: LossRecovery | null;
  readonly ledger: AttemptLedger;
  readonly deadLetters: DeadLetters | null;
  readonly delivered: RateMeter;
  readonly bucket: TokenBucket;
  reportError(err: unknown): void;
}

/**
 * The drain session of a connection just made and resynced: DrainSession, or the one `createSession` makes
 * (edge mode). Its window is ours or the server's Receive Maximum, the lower.
 */
export function startSession(
  opts: PumpOptions,
  lanes: Array<{ lane: PumpLane; weight: number }>,
  parts: SessionParts,
): PumpSession {
  const receiveMaximum = opts.transport.serverLimits?.().receiveMaximum ?? Infinity;
  const host: DrainHost = {
    transport: opts.transport,
    clock: parts.clock,
    gatewayId: opts.gatewayId,
    limits: parts.limits as DrainLimits,
    windowMax: Math.min(parts.limits.inflightMax, receiveMaximum),
    recovery: parts.recovery,
    ledger: parts.ledger,
    deadLetters: parts.deadLetters,
    delivered: parts.delivered,
    bucket: parts.bucket,
    reportError: parts.reportError,
  };
  return opts.createSession?.(host, lanes) ?? new DrainSession(host, lanes);
}

/** When the current connection was made, and how many were: for status, and to tell a stable connection. */
export class ConnectionTimes {
  connects = 0;
  sinceWallMs: number | null = null;
  private atMonoMs: number | null = null;

  constructor(private readonly clock: Clock) {}

  opened(): void {
    this.atMonoMs = this.clock.monoMs();
    this.connects += 1;
    this.sinceWallMs = this.clock.wallMs();
  }

  /** The connection (if one was made) is over: whether it lasted `stableMs`. */
  closed(stableMs: number): boolean {
    const upMs = this.atMonoMs === null ? 0 : this.clock.monoMs() - this.atMonoMs;
    const stable = this.atMonoMs !== null && upMs >= stableMs;
    this.sinceWallMs = null;
    this.atMonoMs = null;
    return stable;
  }
}

/** Races `work` against a timeout; on timeout the connection is torn down so `work` cannot linger. */
export function guarded(
  transport: UplinkTransport,
  work: Promise<void>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const late = () => new UplinkError('TIMEOUT', `${what} took longer than ${timeoutMs} ms`);
  // The timeout is reported before the teardown: the race must say "took longer", not the "destroyed" it
  // causes.
  return deadline(work, timeoutMs, late, () => void transport.destroy());
}
