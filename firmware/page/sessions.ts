import { randomBytes, timingSafeEqual } from 'node:crypto';

/** A session unused this long is gone: a laptop left open on site must not stay logged in. */
export const SESSION_IDLE_SECS = 15 * 60;
/** Sessions held at once; the oldest goes first. A site has one technician, perhaps with a phone too. */
export const SESSIONS_MAX = 16;
/** Failed logins allowed per address within LOGIN_WINDOW_SECS before that address is refused. */
export const LOGIN_FAILURES_MAX = 5;
/** The window over which failures are counted, and how long an address that used them up waits. */
export const LOGIN_WINDOW_SECS = 5 * 60;
/** Addresses tracked by the login limiter; past this the oldest entry is forgotten (bounded memory). */
export const LOGIN_ADDRESSES_MAX = 1024;

/** 256 random bits per session id and CSRF token: beyond guessing for the life of any session. */
const TOKEN_BYTES = 32;

export interface Session {
  id: string;
  csrf: string;
  user: string;
  address: string;
  lastSeenMonoMs: number;
}

function token(): string {
  return randomBytes(TOKEN_BYTES).toString('base64url');
}

export function sameToken(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const left = Buffer.from(a);
  const right = Buffer.from(b);
  return left.length === right.length && timingSafeEqual(left, right);
}

/** In memory on purpose: a restart logs everyone out, and nothing about a session reaches the disk. */
export class Sessions {
  private readonly byId = new Map<string, Session>();

  constructor(private readonly now: () => number = () => performance.now()) {}

  create(user: string, address: string): Session {
    this.sweep();
    while (this.byId.size >= SESSIONS_MAX) this.byId.delete(this.byId.keys().next().value!);
    const session = { id: token(), csrf: token(), user, address, lastSeenMonoMs: this.now() };
    this.byId.set(session.id, session);
    return session;
  }

  /** The live session for a cookie value, its idle clock restarted; undefined when unknown or idle too long. */
  touch(id: string | undefined): Session | undefined {
    if (id === undefined) return undefined;
    const session = this.byId.get(id);
    if (!session) return undefined;
    if (this.now() - session.lastSeenMonoMs > SESSION_IDLE_SECS * 1000) {
      this.byId.delete(id);
      return undefined;
    }
    session.lastSeenMonoMs = this.now();
    return session;
  }

  end(id: string): void {
    this.byId.delete(id);
  }

  get size(): number {
    return this.byId.size;
  }

  private sweep(): void {
    const cutoff = this.now() - SESSION_IDLE_SECS * 1000;
    for (const [id, s] of this.byId) if (s.lastSeenMonoMs < cutoff) this.byId.delete(id);
  }
}

/** Counts failed logins per remote address in a fixed window; a success clears that address. */
export class LoginLimiter {
  private readonly failures = new Map<string, { count: number; windowStartMonoMs: number }>();
  /** Attempts refused because the address had used up its failures: shown on the page and in the log. */
  refused = 0;
  failed = 0;

  constructor(private readonly now: () => number = () => performance.now()) {}

  /** Seconds the address must still wait, or 0 when it may try. */
  retryAfterSecs(address: string): number {
    const entry = this.failures.get(address);
    if (!entry) return 0;
    const elapsedMs = this.now() - entry.windowStartMonoMs;
    if (elapsedMs >= LOGIN_WINDOW_SECS * 1000) {
      this.failures.delete(address);
      return 0;
    }
    return entry.count >= LOGIN_FAILURES_MAX ? Math.ceil((LOGIN_WINDOW_SECS * 1000 - elapsedMs) / 1000) : 0;
  }

  fail(address: string): void {
    this.failed++;
    const entry = this.failures.get(address);
    if (entry) {
      entry.count++;
      return;
    }
    if (this.failures.size >= LOGIN_ADDRESSES_MAX) this.failures.delete(this.failures.keys().next().value!);
    this.failures.set(address, { count: 1, windowStartMonoMs: this.now() });
  }

  succeed(address: string): void {
    this.failures.delete(address);
  }
}
