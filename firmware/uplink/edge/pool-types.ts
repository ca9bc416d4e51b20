import type { Clock } from '../../clock.js';
import type { BackoffOptions } from '../backoff.js';
import type { IdentityLink } from './link.js';
import { isUp, type Entry } from './pool-entry.js';

/** The connection pool's options and status (pool.ts). */

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

/** The pool's status from its entries and its connect counters. */
export function statusOf(entries: Iterable<Entry>, connects: number, connectsRefused: number): PoolStatus {
  let connections = 0;
  let retained = 0;
  let connecting = 0;
  let backoff = 0;
  const refused: string[] = [];
  for (const entry of entries) {
    if (entry.retained) retained += 1;
    if (isUp(entry)) connections += 1;
    else if (entry.state === 'connecting') connecting += 1;
    else if (entry.state === 'backoff') backoff += 1;
    else if (entry.state === 'refused') refused.push(entry.identity);
  }
  return { connections, retained, connecting, backoff, refused, connects, connectsRefused };
}
