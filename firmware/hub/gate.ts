import { readFileSync } from 'node:fs';
import type net from 'node:net';

/**
 * Admission of TCP connections to the hub, before TLS and MQTT. Each socket is a file descriptor, and the
 * process has LimitNOFILE of them for everything: an unauthenticated flood of idle connections used to take
 * them all, and then the store could not open a segment and systemd-notify could not be spawned. So:
 * sockets in all are capped below the descriptor limit, leaving a reserve; sockets that have not yet
 * authenticated ("pending") are capped in all and per remote address; and a pending socket is closed when
 * it has not authenticated within `connectTimeoutSecs` (TLS handshake and CONNECT included).
 */

/**
 * Descriptors kept out of the hub's reach: the store's segment, checkpoint and directory files (up to 48
 * lanes), the identity and twin caches, the uplink's and scope broker's sockets, the status and metrics
 * listeners and their clients, and the three pipes of each systemd-notify spawn.
 */
export const FDS_RESERVED_COUNT = 256;
/** Used when the descriptor limit cannot be read (not Linux): Debian's default soft limit, descriptors. */
const FDS_LIMIT_FALLBACK = 1_024;

export type GateRefusal = 'connections-max' | 'pending-max' | 'pending-per-address' | 'connect-timeout';

export interface GateLimits {
  clientsMax: number;
  pendingConnectionsMax: number;
  pendingPerAddressMax: number;
  connectTimeoutSecs: number;
}

/** This process's soft RLIMIT_NOFILE, from /proc/self/limits (Node has no getrlimit). */
export function fileDescriptorLimit(limitsText?: string): number {
  let text = limitsText;
  try {
    text ??= readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return FDS_LIMIT_FALLBACK;
  }
  const match = /^Max open files\s+(\d+|unlimited)\s/m.exec(text);
  if (match === null) return FDS_LIMIT_FALLBACK;
  return match[1] === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(match[1]);
}

/** Sockets the hub may hold at once: every client and every pending connection, within the descriptor budget. */
export function socketsMax(limits: GateLimits, fdLimit = fileDescriptorLimit()): number {
  return Math.max(1, Math.min(limits.clientsMax + limits.pendingConnectionsMax, fdLimit - FDS_RESERVED_COUNT));
}

interface Pending {
  address: string;
  timer: NodeJS.Timeout;
}

export class ConnectionGate {
  private open = 0;
  /** By "<address>:<port>", which a TLS socket and the TCP socket under it share. */
  private readonly pending = new Map<string, Pending>();
  private readonly pendingByAddress = new Map<string, number>();
  /** Called whenever acceptLimit() may have changed. */
  onChange: () => void = () => {};

  constructor(
    private readonly limits: GateLimits,
    readonly socketsMax: number,
    private readonly onRefused: (reason: GateRefusal, address: string) => void,
  ) {}

  get openSockets(): number {
    return this.open;
  }

  get pendingSockets(): number {
    return this.pending.size;
  }

  /**
   * A listener holding this many sockets or more can only be refused by the gate: at least that many minus
   * the authenticated ones are pending, so the pending cap is full. Given to net.Server.maxConnections, it
   * lets Node close a flood's connections in C++, before a socket object exists (counted on 'drop').
   */
  acceptLimit(): number {
    return Math.min(this.socketsMax, this.open - this.pending.size + this.limits.pendingConnectionsMax);
  }

  /** Called for every accepted TCP socket; false when it was refused (and destroyed). */
  admit(socket: net.Socket): boolean {
    const address = socket.remoteAddress ?? 'unknown';
    const refusal = this.check(address);
    if (refusal !== null) {
      socket.destroy();
      this.onRefused(refusal, address);
      return false;
    }
    const key = `${address}:${socket.remotePort ?? 0}`;
    this.open += 1;
    this.pendingByAddress.set(address, (this.pendingByAddress.get(address) ?? 0) + 1);
    const timer = setTimeout(() => {
      this.settle(key);
      socket.destroy();
      this.onRefused('connect-timeout', address);
    }, this.limits.connectTimeoutSecs * 1000);
    this.pending.set(key, { address, timer });
    socket.once('close', () => {
      this.open -= 1;
      this.settle(key);
      this.onChange();
    });
    this.onChange();
    return true;
  }

  /** The client on this socket has authenticated: it counts against clientsMax from now on, not as pending. */
  authenticated(socket: { remoteAddress?: string; remotePort?: number }): void {
    this.settle(`${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`);
    this.onChange();
  }

  private check(address: string): GateRefusal | null {
    if (this.open >= this.socketsMax) return 'connections-max';
    if (this.pending.size >= this.limits.pendingConnectionsMax) return 'pending-max';
    if ((this.pendingByAddress.get(address) ?? 0) >= this.limits.pendingPerAddressMax) return 'pending-per-address';
    return null;
  }

  private settle(key: string): void {
    const entry = this.pending.get(key);
    if (entry === undefined) return;
    clearTimeout(entry.timer);
    this.pending.delete(key);
    const left = (this.pendingByAddress.get(entry.address) ?? 1) - 1;
    if (left > 0) this.pendingByAddress.set(entry.address, left);
    else this.pendingByAddress.delete(entry.address);
  }

  close(): void {
    for (const key of [...this.pending.keys()]) this.settle(key);
  }
}
