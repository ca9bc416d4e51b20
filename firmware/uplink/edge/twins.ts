import type { TwinChannel } from '../types.js';
import type { ConnectionPool } from './pool.js';

/**
 * What edge mode offers the children's twin sync (firmware/twin/edge-sync.ts): each child's twin is its own,
 * reached on that child's upstream connection in the pool, which twin work may open like a telemetry backlog.
 */
export interface IdentityTwins {
  /** The identity has twin work: its connection is opened, paced and bounded like the drain's. */
  want(identity: string): void;
  /** The identity's own twin on its upstream connection while that is up; null otherwise. */
  twin(identity: string): TwinChannel | null;
  /** Called with each identity whose upstream connection came up (a first connect, a reconnect, a renewal). */
  onLinkUp(listener: (identity: string) => void): () => void;
}

/** IdentityTwins over the pool: `changed()` is called on every change of the pool's connections. */
export class PoolTwins implements IdentityTwins {
  private up = new Set<string>();
  private readonly listeners = new Set<(identity: string) => void>();

  constructor(private readonly pool: ConnectionPool) {}

  want(identity: string): void {
    this.pool.want(identity);
  }

  twin(identity: string): TwinChannel | null {
    return this.pool.upTransport(identity)?.twin ?? null;
  }

  onLinkUp(listener: (identity: string) => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Tells the listeners which identities came up since the last change. */
  changed(): void {
    const now = new Set(this.pool.upIdentities());
    const risen = [...now].filter((identity) => !this.up.has(identity));
    this.up = now;
    for (const identity of risen) for (const listener of this.listeners) listener(identity);
  }
}
