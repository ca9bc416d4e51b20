import { deadline } from '../timers.js';
import { UplinkError, type UplinkMessage, type UplinkTransport } from '../types.js';
import {
  CLOUD_CONNECTS_INFLIGHT_MAX,
  CLOUD_CONNECTIONS_MAX_DEFAULT,
  CLOUD_CONNECTION_IDLE_SECS_DEFAULT,
  CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT,
} from './limits.js';
import {
  ConnectPacer,
  armRenewal,
  connectFailed,
  isOpen,
  isUp,
  newEntry,
  type Entry,
  type IdentityState,
} from './pool-entry.js';
import { statusOf, type PoolOptions, type PoolStatus } from './pool-types.js';

export type { IdentityState } from './pool-entry.js';
export type { PoolOptions, PoolStatus } from './pool-types.js';

/** How often idle connections and token lifetimes are checked, ms: idle and renewal times are minutes. */
const HOUSEKEEPING_MS = 1_000;

/**
 * One upstream connection per active identity (edge mode), bounded, paced, closed when idle, renewed before
 * its token expires. Each identity has its own backoff: a child IoT Hub throttles or refuses waits alone.
 */
export class ConnectionPool {
  private readonly entries = new Map<string, Entry>();
  private readonly connectionsMax: number;
  private readonly idleMs: number;
  private readonly pacer: ConnectPacer;
  private lastAcceptedMonoMs = -Infinity;
  private connects = 0;
  private connectsRefused = 0;
  private timer: NodeJS.Timeout | null = null;
  private housekeeping: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(private readonly opts: PoolOptions) {
    this.connectionsMax = opts.connectionsMax ?? CLOUD_CONNECTIONS_MAX_DEFAULT;
    this.idleMs = (opts.idleSecs ?? CLOUD_CONNECTION_IDLE_SECS_DEFAULT) * 1000;
    this.pacer = new ConnectPacer(1000 / (opts.connectsPerSecMax ?? CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT));
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
      entry = this.createEntry(identity);
      this.entries.set(identity, entry);
    }
    if (this.state(identity) !== 'closed') return;
    entry.state = 'waiting';
    entry.waitingSinceMonoMs = this.opts.clock.monoMs();
    this.schedule();
  }

  /** The identity's connection while it is up, for work that rides on it besides telemetry (its twin). */
  upTransport(identity: string): UplinkTransport | null {
    const entry = this.entries.get(identity);
    return entry !== undefined && isUp(entry) ? entry.link.transport : null;
  }

  /** Identities whose connection is up now. */
  upIdentities(): string[] {
    return [...this.entries.values()].filter(isUp).map((e) => e.identity);
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
    if (entry === undefined || !isUp(entry)) return;
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
    return statusOf(this.entries.values(), this.connects, this.connectsRefused);
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

  private createEntry(identity: string): Entry {
    const entry = newEntry(identity, this.opts.createLink(identity), this.opts.backoff, this.opts.clock.monoMs());
    entry.link.transport.onDisconnect((cause) => {
      const ours = cause instanceof UplinkError && cause.code === 'CLOSED';
      if (!ours && isUp(entry)) this.lost(entry, cause);
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

  private count(which: (entry: Entry) => boolean): number {
    let count = 0;
    for (const entry of this.entries.values()) if (which(entry)) count += 1;
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
    const waiting: Entry[] = [];
    for (const entry of this.entries.values()) {
      if (entry.state === 'backoff' && entry.retryAtMonoMs <= now) {
        entry.state = 'waiting';
        entry.waitingSinceMonoMs = entry.retryAtMonoMs;
      }
      if (entry.state === 'backoff') dueAtMs = Math.min(dueAtMs, entry.retryAtMonoMs);
      if (entry.state === 'waiting') waiting.push(entry);
    }
    // The longest waiting first: in map order, identities wanted early that fail fast (a short backoff) would
    // take every slot from one wanted later.
    waiting.sort((a, b) => a.waitingSinceMonoMs - b.waitingSinceMonoMs);
    for (const entry of waiting) {
      const notBefore = this.pacer.notBefore(now);
      if (notBefore !== null) {
        dueAtMs = Math.min(dueAtMs, notBefore);
        break;
      }
      // A finished connect calls schedule() again, so a slot freed here is taken at once.
      if (this.count((e) => e.state === 'connecting') >= CLOUD_CONNECTS_INFLIGHT_MAX) break;
      if (this.count(isOpen) >= this.connectionsMax && !this.evictIdle()) continue;
      this.pacer.take(now);
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

  /** A failed connect: backoff, or refused once IoT Hub keeps refusing the identity (pool-entry.ts). */
  private connectFailed(entry: Entry, err: Error): void {
    const othersUp = [...this.entries.values()].some((other) => other !== entry && other.state === 'up');
    const othersAccepted = (since: number) => othersUp || this.lastAcceptedMonoMs >= since;
    const { identityRefusal, report } = connectFailed(entry, err, this.opts.clock.monoMs(), othersAccepted);
    if (identityRefusal) this.connectsRefused += 1;
    this.opts.reportError(report);
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

  /** Renewal when its token nears its end (pool-entry.ts), once nothing is in flight on the connection. */
  private armRenewal(entry: Entry): void {
    armRenewal(entry, this.opts.clock.wallMs(), () => {
      if (entry.state !== 'up' || this.closed) return;
      entry.state = 'renewing';
      if (entry.inflight === 0) this.renew(entry);
    });
  }

  /** A fresh connect with a fresh token, ahead of the other waiting identities. */
  private renew(entry: Entry): void {
    entry.state = 'waiting';
    entry.waitingSinceMonoMs = -Infinity;
    void entry.link.transport
      .close()
      .catch(() => {})
      .then(() => this.schedule());
    this.opts.onChange();
  }
}
