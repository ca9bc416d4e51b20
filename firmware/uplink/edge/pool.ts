import type { Clock } from '../../clock.js';
import { Backoff, type BackoffOptions } from '../backoff.js';
import { deadline } from '../timers.js';
import { UplinkError, type UplinkMessage, type UplinkTransport } from '../types.js';
import type { IdentityLink } from './link.js';
import {
  CLOUD_CONNECTIONS_MAX_DEFAULT,
  CLOUD_CONNECTION_IDLE_SECS_DEFAULT,
  CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT,
  IDENTITY_REFUSALS_MAX,
  REFUSED_RECHECK_MS,
  isIdentityRefusal,
} from './limits.js';
import { TOKEN_RENEWAL_SHARE } from './token.js';

/** How often idle connections and token lifetimes are checked, ms: idle and renewal times are minutes. */
const HOUSEKEEPING_MS = 1_000;
/**
 * How far behind its schedule the pacing may catch up, ms. Connects are slotted on a grid of
 * 1 / connectsPerSecMax; a pacing timer that fires late (a busy event loop: the bench measured 150 ms late
 * on a loaded Pi-class CPU, which stretched 20 connects a second to 5) starts the slots it missed at once
 * instead of pushing every later one back. A quarter second bounds that catch-up to a few connects, so no
 * second sees many more than connectsPerSecMax; a pool idle for longer starts on a fresh grid.
 */
const CONNECT_CATCH_UP_MS = 250;

export type IdentityState = 'closed' | 'waiting' | 'connecting' | 'up' | 'renewing' | 'backoff' | 'refused';

interface Entry {
  identity: string;
  link: IdentityLink;
  state: IdentityState;
  backoff: Backoff;
  retryAtMonoMs: number;
  lastTrafficMonoMs: number;
  inflight: number;
  /** The identity is connected at the local hub: its connection stays open however idle. */
  retained: boolean;
  refusals: number;
  firstRefusalMonoMs: number;
  lastError: string | null;
  renewTimer: NodeJS.Timeout | null;
}

export interface PoolOptions {
  clock: Clock;
  createLink: (identity: string) => IdentityLink;
  connectionsMax?: number;
  idleSecs?: number;
  connectsPerSecMax?: number;
  connectTimeoutMs: number;
  backoff?: BackoffOptions;
  /** Something changed (a connection came up, went down, was refused): the drain looks again. */
  onChange: () => void;
  /** True while the drain holds records for the identity: its connection is not idle then. */
  busy: (identity: string) => boolean;
  reportError: (err: Error) => void;
}

export interface PoolStatus {
  connections: number;
  /** Identities kept open because their child is connected at the local hub. */
  retained: number;
  connecting: number;
  backoff: number;
  refused: string[];
  connects: number;
  connectsRefused: number;
}

/**
 * One upstream connection per active identity (edge mode), bounded, paced, closed when idle, renewed before
 * its token expires. Each identity has its own backoff: a child IoT Hub throttles or refuses waits alone.
 */
export class ConnectionPool {
  private readonly entries = new Map<string, Entry>();
  private readonly connectionsMax: number;
  private readonly idleMs: number;
  private readonly connectIntervalMs: number;
  private nextConnectMonoMs = -Infinity;
  private lastAcceptedMonoMs = -Infinity;
  private connects = 0;
  private connectsRefused = 0;
  private timer: NodeJS.Timeout | null = null;
  private housekeeping: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly opts: PoolOptions) {
    this.connectionsMax = opts.connectionsMax ?? CLOUD_CONNECTIONS_MAX_DEFAULT;
    this.idleMs = (opts.idleSecs ?? CLOUD_CONNECTION_IDLE_SECS_DEFAULT) * 1000;
    this.connectIntervalMs = 1000 / (opts.connectsPerSecMax ?? CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT);
  }

  state(identity: string): IdentityState {
    const entry = this.entries.get(identity);
    if (entry === undefined) return 'closed';
    if (entry.state === 'refused' && this.opts.clock.monoMs() >= entry.retryAtMonoMs) entry.state = 'closed';
    return entry.state;
  }

  inflight(identity: string): number {
    return this.entries.get(identity)?.inflight ?? 0;
  }

  /** The identity has records to send: its connection is opened when pacing and the bound allow. */
  want(identity: string): void {
    if (this.closed) return;
    let entry = this.entries.get(identity);
    if (entry === undefined) {
      entry = this.newEntry(identity);
      this.entries.set(identity, entry);
    }
    if (this.state(identity) !== 'closed') return;
    entry.state = 'waiting';
    this.schedule();
  }

  /** The identity's connection while it is up, for work that rides on it besides telemetry (its twin). */
  upTransport(identity: string): UplinkTransport | null {
    const state = this.entries.get(identity)?.state;
    return state === 'up' || state === 'renewing' ? this.entries.get(identity)!.link.transport : null;
  }

  /** Identities whose connection is up now. */
  upIdentities(): string[] {
    return [...this.entries.values()].filter((e) => e.state === 'up' || e.state === 'renewing').map((e) => e.identity);
  }

  /** The child connected at the local hub: its connection is opened (paced, bounded) and kept while it stays. */
  retain(identity: string): void {
    this.want(identity);
    const entry = this.entries.get(identity);
    if (entry !== undefined) entry.retained = true;
  }

  /** The child left the local hub: its connection closes once idle for cloudConnectionIdleSecs from now. */
  release(identity: string): void {
    const entry = this.entries.get(identity);
    if (entry === undefined || !entry.retained) return;
    entry.retained = false;
    entry.lastTrafficMonoMs = this.opts.clock.monoMs();
  }

  publish(identity: string, message: UplinkMessage): Promise<void> {
    const entry = this.entries.get(identity);
    if (entry === undefined || entry.state !== 'up') {
      return Promise.reject(new UplinkError('DISCONNECTED', `no upstream connection for "${identity}"`));
    }
    entry.inflight += 1;
    entry.lastTrafficMonoMs = this.opts.clock.monoMs();
    const settle = () => {
      entry.inflight -= 1;
      entry.lastTrafficMonoMs = this.opts.clock.monoMs();
      if (entry.inflight === 0 && entry.state === 'renewing') this.renew(entry);
    };
    return entry.link.transport.publish(message).finally(settle);
  }

  /** A publish on the identity's connection failed in a way that needs a new connection. */
  fail(identity: string, cause: Error): void {
    const entry = this.entries.get(identity);
    if (entry === undefined || (entry.state !== 'up' && entry.state !== 'renewing')) return;
    this.lost(entry, cause);
    void entry.link.transport.destroy();
  }

  /** The registry lists these identities again (a scope refresh): the refused ones are tried again now. */
  recheck(identities: Iterable<string>): void {
    let due = false;
    for (const identity of identities) {
      const entry = this.entries.get(identity);
      if (entry?.state !== 'refused') continue;
      entry.retryAtMonoMs = this.opts.clock.monoMs();
      due = true;
    }
    if (due) this.opts.onChange();
  }

  /** The drain has nothing more for the identity: an identity waiting for room may take its place. */
  released(identity: string): void {
    if (this.entries.get(identity)?.state === 'up') this.schedule();
  }

  status(): PoolStatus {
    let connections = 0;
    let retained = 0;
    let connecting = 0;
    let backoff = 0;
    const refused: string[] = [];
    for (const entry of this.entries.values()) {
      if (entry.retained) retained += 1;
      if (entry.state === 'up' || entry.state === 'renewing') connections += 1;
      else if (entry.state === 'connecting') connecting += 1;
      else if (entry.state === 'backoff') backoff += 1;
      else if (entry.state === 'refused') refused.push(entry.identity);
    }
    const { connects, connectsRefused } = this;
    return { connections, retained, connecting, backoff, refused, connects, connectsRefused };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer !== null) clearTimeout(this.timer);
    if (this.housekeeping !== null) clearInterval(this.housekeeping);
    this.timer = this.housekeeping = null;
    for (const entry of this.entries.values()) if (entry.renewTimer !== null) clearTimeout(entry.renewTimer);
    await Promise.all([...this.entries.values()].map((entry) => entry.link.transport.close().catch(() => {})));
    this.entries.clear();
  }

  private newEntry(identity: string): Entry {
    const link = this.opts.createLink(identity);
    const entry: Entry = {
      identity,
      link,
      state: 'closed',
      backoff: new Backoff(this.opts.backoff),
      retryAtMonoMs: 0,
      lastTrafficMonoMs: this.opts.clock.monoMs(),
      inflight: 0,
      retained: false,
      refusals: 0,
      firstRefusalMonoMs: 0,
      lastError: null,
      renewTimer: null,
    };
    link.transport.onDisconnect((cause) => {
      const ours = cause instanceof UplinkError && cause.code === 'CLOSED';
      if (!ours && (entry.state === 'up' || entry.state === 'renewing')) this.lost(entry, cause);
    });
    this.housekeeping ??= setInterval(() => this.tidy(), HOUSEKEEPING_MS);
    return entry;
  }

  private lost(entry: Entry, cause: Error): void {
    entry.state = 'backoff';
    entry.lastError = cause.message;
    entry.retryAtMonoMs = this.opts.clock.monoMs() + entry.backoff.nextDelayMs();
    this.opts.reportError(
      new UplinkError('DISCONNECTED', `upstream connection of "${entry.identity}" lost: ${cause.message}`, { cause }),
    );
    this.opts.onChange();
    this.schedule();
  }

  private open(): number {
    let count = 0;
    for (const entry of this.entries.values()) {
      if (entry.state === 'connecting' || entry.state === 'up' || entry.state === 'renewing') count += 1;
    }
    return count;
  }

  /** Starts the connects that are due, one per pacing interval, and arms a timer for the next one. */
  private schedule(): void {
    if (this.closed) return;
    // Re-armed on every call: a timer set for a far backoff must not hold back an identity wanted since.
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    const now = this.opts.clock.monoMs();
    let dueAtMs = Infinity;
    for (const entry of this.entries.values()) {
      if (entry.state === 'backoff' && entry.retryAtMonoMs <= now) entry.state = 'waiting';
      if (entry.state === 'backoff') dueAtMs = Math.min(dueAtMs, entry.retryAtMonoMs);
      if (entry.state !== 'waiting') continue;
      if (this.nextConnectMonoMs > now) {
        dueAtMs = Math.min(dueAtMs, this.nextConnectMonoMs);
        continue;
      }
      if (this.open() >= this.connectionsMax && !this.evictIdle()) continue;
      const slotMonoMs = this.nextConnectMonoMs < now - CONNECT_CATCH_UP_MS ? now : this.nextConnectMonoMs;
      this.nextConnectMonoMs = slotMonoMs + this.connectIntervalMs;
      void this.connect(entry);
    }
    if (dueAtMs === Infinity) return;
    this.timer = setTimeout(
      () => {
        this.timer = null;
        this.schedule();
      },
      Math.max(1, Math.ceil(dueAtMs - now)),
    );
  }

  /** Closes the least recently used connection with nothing to send, to make room; false when none is idle. */
  private evictIdle(): boolean {
    let victim: Entry | null = null;
    for (const entry of this.entries.values()) {
      if (entry.state !== 'up' || !this.unused(entry)) continue;
      if (victim === null || entry.lastTrafficMonoMs < victim.lastTrafficMonoMs) victim = entry;
    }
    if (victim === null) return false;
    this.closeEntry(victim);
    return true;
  }

  /** Nothing in flight, nothing to send, no child at the local hub: the connection may close. */
  private unused(entry: Entry): boolean {
    return entry.inflight === 0 && !entry.retained && !this.opts.busy(entry.identity);
  }

  private closeEntry(entry: Entry): void {
    entry.state = 'closed';
    void entry.link.transport.close().catch(() => {});
  }

  private async connect(entry: Entry): Promise<void> {
    entry.state = 'connecting';
    this.connects += 1;
    const { connectTimeoutMs } = this.opts;
    const timeout = () =>
      new UplinkError('TIMEOUT', `connect of "${entry.identity}" took longer than ${connectTimeoutMs} ms`);
    try {
      await deadline(
        entry.link.transport.connect(),
        connectTimeoutMs,
        timeout,
        () => void entry.link.transport.destroy(),
      );
      if (this.closed) return void entry.link.transport.close().catch(() => {});
      entry.state = 'up';
      entry.refusals = 0;
      entry.backoff.reset();
      entry.lastTrafficMonoMs = this.opts.clock.monoMs();
      this.lastAcceptedMonoMs = this.opts.clock.monoMs();
      this.armRenewal(entry);
    } catch (err) {
      if (this.closed) return;
      this.connectFailed(entry, err as Error);
    }
    this.opts.onChange();
    this.schedule();
  }

  /**
   * A refusal of the identity counts towards a permanent one only while IoT Hub accepts other identities
   * signed with the same `$edgeHub` key (one is connected, or one connected since the first refusal): when it
   * refuses every identity, the key is at fault, not the children.
   */
  private connectFailed(entry: Entry, err: Error): void {
    const now = this.opts.clock.monoMs();
    const refusedIdentity = isIdentityRefusal(err);
    entry.lastError = err.message;
    if (refusedIdentity) {
      this.connectsRefused += 1;
      if (entry.refusals === 0) entry.firstRefusalMonoMs = now;
      entry.refusals += 1;
    }
    const othersUp = [...this.entries.values()].some((other) => other !== entry && other.state === 'up');
    const othersAccepted = othersUp || this.lastAcceptedMonoMs >= entry.firstRefusalMonoMs;
    if (refusedIdentity && entry.refusals >= IDENTITY_REFUSALS_MAX && othersAccepted) {
      entry.state = 'refused';
      entry.retryAtMonoMs = now + REFUSED_RECHECK_MS;
      entry.refusals = 0;
      this.opts.reportError(
        new UplinkError(
          'REJECTED',
          `IoT Hub refuses "${entry.identity}" (${err.message}); its records go to the dead-letter lane`,
        ),
      );
      return;
    }
    entry.state = 'backoff';
    entry.retryAtMonoMs = now + entry.backoff.nextDelayMs();
    this.opts.reportError(err);
  }

  /** Starts connects that became due and closes idle connections. */
  private tidy(): void {
    this.schedule();
    const now = this.opts.clock.monoMs();
    for (const entry of this.entries.values()) {
      if (entry.state !== 'up') continue;
      if (this.unused(entry) && now - entry.lastTrafficMonoMs >= this.idleMs) this.closeEntry(entry);
    }
  }

  /**
   * Renews the connection once TOKEN_RENEWAL_SHARE of its token's lifetime is left: a timer per connection,
   * not the housekeeping pass, whose second of granularity is a large part of a short token's margin.
   */
  private armRenewal(entry: Entry): void {
    if (entry.renewTimer !== null) clearTimeout(entry.renewTimer);
    const expiresAt = entry.link.tokenExpiresAtWallMs();
    if (expiresAt <= 0) return;
    const ttlMs = expiresAt - entry.link.tokenIssuedAtWallMs();
    const dueInMs = Math.max(0, expiresAt - ttlMs * TOKEN_RENEWAL_SHARE - this.opts.clock.wallMs());
    entry.renewTimer = setTimeout(() => {
      entry.renewTimer = null;
      if (entry.state !== 'up' || this.closed) return;
      entry.state = 'renewing';
      if (entry.inflight === 0) this.renew(entry);
    }, dueInMs);
  }

  /** A fresh connect with a fresh token, ahead of the other waiting identities. */
  private renew(entry: Entry): void {
    entry.state = 'waiting';
    void entry.link.transport
      .close()
      .catch(() => {})
      .then(() => this.schedule());
    this.opts.onChange();
  }
}
