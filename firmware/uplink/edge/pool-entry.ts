import { Backoff, type BackoffOptions } from '../backoff.js';
import { UplinkError } from '../types.js';
import type { IdentityLink } from './link.js';
import { IDENTITY_REFUSALS_MAX, REFUSED_RECHECK_MS, isIdentityRefusal } from './limits.js';
import { TOKEN_RENEWAL_SHARE } from './token.js';

/**
 * One identity's place in the connection pool (pool.ts): its state, its own backoff, its traffic for the
 * idle close, and the count of IoT Hub's refusals of it that decides when it is refused for good.
 */

export type IdentityState = 'closed' | 'waiting' | 'connecting' | 'up' | 'renewing' | 'backoff' | 'refused';

export interface Entry {
  identity: string;
  link: IdentityLink;
  state: IdentityState;
  backoff: Backoff;
  retryAtMonoMs: number;
  /** Since when the identity waits for a connect slot: slots go to the longest waiting first. */
  waitingSinceMonoMs: number;
  lastTrafficMonoMs: number;
  inflight: number;
  /** The identity is connected at the local hub: its connection stays open however idle. */
  retained: boolean;
  refusals: number;
  firstRefusalMonoMs: number;
  lastError: string | null;
  renewTimer: NodeJS.Timeout | null;
}

export function newEntry(identity: string, link: IdentityLink, backoff: BackoffOptions | undefined, nowMs: number) {
  const entry: Entry = {
    identity,
    link,
    state: 'closed',
    backoff: new Backoff(backoff),
    retryAtMonoMs: 0,
    waitingSinceMonoMs: nowMs,
    lastTrafficMonoMs: nowMs,
    inflight: 0,
    retained: false,
    refusals: 0,
    firstRefusalMonoMs: 0,
    lastError: null,
    renewTimer: null,
  };
  return entry;
}

/** Connected, with or without a renewal due. */
export function isUp(entry: Entry): boolean {
  return entry.state === 'up' || entry.state === 'renewing';
}

/** Connected or on its way: what counts against connectionsMax. */
export function isOpen(entry: Entry): boolean {
  return entry.state === 'connecting' || isUp(entry);
}

/**
 * A failed connect: the entry goes to its backoff, or is refused for REFUSED_RECHECK_MS once IoT Hub refused
 * the identity IDENTITY_REFUSALS_MAX times in a row while `othersAccepted` (other identities signed with the
 * same `$edgeHub` key got in since its first refusal: when IoT Hub refuses every identity, the key is at
 * fault, not the children). Returns whether this was a refusal of the identity, and the error to report.
 */
export function connectFailed(
  entry: Entry,
  err: Error,
  nowMs: number,
  othersAccepted: (firstRefusalMonoMs: number) => boolean,
): { identityRefusal: boolean; report: Error } {
  const identityRefusal = isIdentityRefusal(err);
  entry.lastError = err.message;
  if (identityRefusal) {
    if (entry.refusals === 0) entry.firstRefusalMonoMs = nowMs;
    entry.refusals += 1;
  }
  if (identityRefusal && entry.refusals >= IDENTITY_REFUSALS_MAX && othersAccepted(entry.firstRefusalMonoMs)) {
    entry.state = 'refused';
    entry.retryAtMonoMs = nowMs + REFUSED_RECHECK_MS;
    entry.refusals = 0;
    const what = `IoT Hub refuses "${entry.identity}" (${err.message}); its records go to the dead-letter lane`;
    return { identityRefusal, report: new UplinkError('REJECTED', what) };
  }
  entry.state = 'backoff';
  entry.retryAtMonoMs = nowMs + entry.backoff.nextDelayMs();
  return { identityRefusal, report: err };
}

/**
 * Arms the entry's renewal for when TOKEN_RENEWAL_SHARE of its token's lifetime is left: a timer per
 * connection, not the pool's housekeeping pass, whose second of granularity is a large part of a short
 * token's margin. Nothing is armed before the first connect (no token yet).
 */
export function armRenewal(entry: Entry, wallNowMs: number, due: () => void): void {
  if (entry.renewTimer !== null) clearTimeout(entry.renewTimer);
  const expiresAt = entry.link.tokenExpiresAtWallMs();
  if (expiresAt <= 0) return;
  const ttlMs = expiresAt - entry.link.tokenIssuedAtWallMs();
  const dueInMs = Math.max(0, expiresAt - ttlMs * TOKEN_RENEWAL_SHARE - wallNowMs);
  entry.renewTimer = setTimeout(() => {
    entry.renewTimer = null;
    due();
  }, dueInMs);
}

/**
 * How far behind its schedule the pacing may catch up, ms. Connects are slotted on a grid of
 * 1 / connectsPerSecMax; a pacing timer that fires late (a busy event loop: the bench measured 150 ms late
 * on a loaded Pi-class CPU, which stretched 20 connects a second to 5) starts the slots it missed at once
 * instead of pushing every later one back. A quarter second bounds that catch-up to a few connects, so no
 * second sees many more than connectsPerSecMax; a pool idle for longer starts on a fresh grid.
 */
const CONNECT_CATCH_UP_MS = 250;

/** The pool's connect pacing: at most one connect per interval, on a grid that catches up a little. */
export class ConnectPacer {
  private nextMonoMs = -Infinity;

  constructor(private readonly intervalMs: number) {}

  /** When the next connect may start, if that is later than now; null when one may start now. */
  notBefore(nowMs: number): number | null {
    return this.nextMonoMs > nowMs ? this.nextMonoMs : null;
  }

  /** A connect starts now: it takes the next slot (or a fresh grid's first, after a long pause). */
  take(nowMs: number): void {
    const slotMonoMs = this.nextMonoMs < nowMs - CONNECT_CATCH_UP_MS ? nowMs : this.nextMonoMs;
    this.nextMonoMs = slotMonoMs + this.intervalMs;
  }
}
