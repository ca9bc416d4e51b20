import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import mqttPacket from 'mqtt-packet';
import { AcceptLimiter, peakPerSec, refuseConnection, type AcceptLimit } from './accept-limit.js';

/**
 * A TCP proxy on loopback that stands in for the gateway's uplink: tests put it between outpost and a real
 * broker and make the "link" fail the ways cellular links fail.
 *
 * - `pass()`: bytes flow both ways.
 * - `cut()`: every open connection is closed at once (RST by default, FIN with `{ reset: false }`).
 * - `blackhole()`: sockets stay open, nothing is forwarded, no FIN and no RST — the proxy stops reading, so
 *   the bytes wait in kernel buffers, exactly as a TCP sender's unacknowledged data waits while every packet
 *   is dropped. New connections are accepted but never reach the broker until `pass()`.
 * - `refuse()`: new connections are reset as soon as they are accepted; open ones are left alone.
 * - `strand()`: every connection open now forwards nothing ever again, whatever the mode, and is never closed
 *   by the proxy — as after a modem redial with a new address, where the old connections are silently dead
 *   (a black hole holds bytes and `pass()` delivers them, as TCP would retransmit them; a stranded one never).
 *   New connections follow the mode.
 * - `throttle(bytesPerSec)`: each direction of each connection is held to that rate; `throttle(null)` lifts it.
 * - `limitAccepts(limit)`: a connection-rate limit (accept-limit.ts) for new connections; `null` lifts it.
 * - `disconnect(reasonCode)`: every open connection gets an MQTT 5 DISCONNECT with that reason code from the
 *   "server" and is closed, as a broker shedding load ends its sessions (MQTT 5, 3.14: 0x89 Server busy...).
 *
 * Every accept is metered (`acceptTimesMs`, `peakAcceptsPerSec`), refused or not: what a broker's
 * listener sees of a fleet is the rate of connection attempts.
 */
export type ProxyMode = 'pass' | 'blackhole' | 'refuse';

export interface FaultProxyOptions {
  /** Port of the broker the proxy forwards to, on `targetHost`. */
  targetPort: number;
  /** Default 127.0.0.1. */
  targetHost?: string;
  /** Port to listen on; default 0 (an ephemeral port). */
  listenPort?: number;
}

/** Accept times kept for metering; a fleet benchmark makes a few thousand, a test a handful. */
const ACCEPT_TIMES_KEPT_MAX = 1_000_000;

/** Throttled writes go out in slices of 1/THROTTLE_SLICES_PER_SEC of the rate, so the rate is smooth. */
const THROTTLE_SLICES_PER_SEC = 20;

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve = () => {};
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

/** Waits for `event`, or for the socket to close first (which `events.once` would wait through forever). */
function settle(socket: net.Socket, event: 'connect' | 'drain'): Promise<string> {
  return new Promise((resolve) => {
    const done = (name: string) => () => {
      socket.off(event, onEvent);
      socket.off('close', onClose);
      resolve(name);
    };
    const onEvent = done(event);
    const onClose = done('close');
    socket.once(event, onEvent);
    socket.once('close', onClose);
  });
}

interface Pair {
  client: net.Socket;
  upstream: net.Socket | null;
  stranded: boolean;
}

export class FaultProxy {
  readonly port: number;
  private modeNow: ProxyMode = 'pass';
  private throttleBytesPerSec: number | null = null;
  private readonly pairs = new Set<Pair>();
  /** Resolved and replaced each time the mode changes, so forwarders blocked by a black hole wake up. */
  private modeChanged = deferred();
  private closed = false;
  /** Connections accepted since start (including refused ones). */
  acceptedCount = 0;
  /** performance.now() of each accept, in order (up to ACCEPT_TIMES_KEPT_MAX). */
  readonly acceptTimesMs: number[] = [];
  /** Connections refused by the accept limit. */
  rateRefusedCount = 0;
  private limiter: AcceptLimiter | null = null;
  /** Connections being refused by the accept limit (awaiting their CONNECT to answer it). */
  private readonly refusing = new Set<net.Socket>();
  bytesToTarget = 0;
  bytesToClient = 0;

  private constructor(
    private readonly server: net.Server,
    private readonly opts: Required<FaultProxyOptions>,
  ) {
    this.port = (server.address() as net.AddressInfo).port;
  }

  static async start(options: FaultProxyOptions): Promise<FaultProxy> {
    const opts = { targetHost: '127.0.0.1', listenPort: 0, ...options };
    const server = net.createServer({ pauseOnConnect: true });
    server.listen(opts.listenPort, '127.0.0.1');
    await once(server, 'listening');
    const proxy = new FaultProxy(server, opts);
    server.on('connection', (socket) => proxy.accept(socket));
    return proxy;
  }

  get mode(): ProxyMode {
    return this.modeNow;
  }

  /** Connections currently open through the proxy. */
  get connectionCount(): number {
    return this.pairs.size;
  }

  pass(): void {
    this.setMode('pass');
  }

  blackhole(): void {
    this.setMode('blackhole');
  }

  refuse(): void {
    this.setMode('refuse');
  }

  strand(): void {
    for (const pair of this.pairs) pair.stranded = true;
    this.setMode(this.modeNow);
  }

  throttle(bytesPerSec: number | null): void {
    if (bytesPerSec !== null && !(bytesPerSec >= 1)) {
      throw new RangeError(`"bytesPerSec" must be at least 1 or null, got ${bytesPerSec}`);
    }
    this.throttleBytesPerSec = bytesPerSec;
  }

  limitAccepts(limit: AcceptLimit | null): void {
    this.limiter = limit === null ? null : new AcceptLimiter(limit, performance.now());
  }

  /** Peak accept rate (accept-limit.ts peakPerSec) between `fromMs` and `toMs`, performance.now() times. */
  peakAcceptsPerSec(windowMs: number, fromMs = 0, toMs = Infinity): number {
    return peakPerSec(
      this.acceptTimesMs.filter((at) => at >= fromMs && at <= toMs),
      windowMs,
    );
  }

  /** Closes every open connection; RST unless `reset: false` (then FIN). The mode is unchanged. */
  cut(opts: { reset?: boolean } = {}): void {
    for (const pair of [...this.pairs]) this.drop(pair, opts.reset ?? true);
  }

  /**
   * Ends every open connection with an MQTT 5 DISCONNECT carrying `reasonCode`. The broker's side is closed
   * first, so no byte of its can follow (or split) the packet; use it while the connections are idle.
   */
  disconnect(reasonCode: number): void {
    const packet = mqttPacket.generate({ cmd: 'disconnect', reasonCode }, { protocolVersion: 5 });
    for (const pair of [...this.pairs]) {
      this.pairs.delete(pair);
      pair.upstream?.destroy();
      pair.client.end(packet, () => pair.client.destroy());
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.cut();
    for (const socket of this.refusing) socket.destroy();
    this.setMode(this.modeNow);
    this.server.close();
    await once(this.server, 'close');
  }

  private setMode(mode: ProxyMode): void {
    this.modeNow = mode;
    const previous = this.modeChanged;
    this.modeChanged = deferred();
    previous.resolve();
  }

  private accept(client: net.Socket): void {
    this.acceptedCount += 1;
    const nowMs = performance.now();
    if (this.acceptTimesMs.length < ACCEPT_TIMES_KEPT_MAX) this.acceptTimesMs.push(nowMs);
    if (this.closed || this.modeNow === 'refuse') {
      client.resetAndDestroy();
      return;
    }
    // The limit is the broker's answer: a black-holed link carries none (its connections wait, unmetered).
    if (this.modeNow === 'pass' && this.limiter !== null && !this.limiter.take(nowMs)) {
      this.rateRefusedCount += 1;
      this.refusing.add(client);
      client.on('close', () => this.refusing.delete(client));
      refuseConnection(client, this.limiter.limit);
      return;
    }
    const pair: Pair = { client, upstream: null, stranded: false };
    this.pairs.add(pair);
    client.on('error', () => this.drop(pair, true));
    client.on('close', () => this.drop(pair, false));
    void this.connectUpstream(pair);
  }

  private async connectUpstream(pair: Pair): Promise<void> {
    await this.passable(pair);
    if (!this.pairs.has(pair)) return;
    const upstream = net.connect(this.opts.targetPort, this.opts.targetHost);
    pair.upstream = upstream;
    upstream.on('error', () => this.drop(pair, true));
    upstream.on('close', () => this.drop(pair, false));
    if ((await settle(upstream, 'connect')) !== 'connect') return;
    void this.forward(pair, pair.client, upstream, 'toTarget');
    void this.forward(pair, upstream, pair.client, 'toClient');
  }

  /** Waits while the link is black-holed or the pair stranded; false once the pair is gone. */
  private async passable(pair: Pair): Promise<boolean> {
    while ((this.modeNow === 'blackhole' || pair.stranded) && this.pairs.has(pair)) await this.modeChanged.promise;
    return this.pairs.has(pair);
  }

  private async forward(pair: Pair, from: net.Socket, to: net.Socket, direction: 'toTarget' | 'toClient') {
    try {
      for await (const chunk of from as AsyncIterable<Buffer>) {
        let rest = chunk;
        while (rest.length > 0) {
          if (!(await this.passable(pair))) return;
          const rate = this.throttleBytesPerSec;
          const sliceBytes = rate === null ? rest.length : Math.max(1, Math.floor(rate / THROTTLE_SLICES_PER_SEC));
          const slice = rest.subarray(0, sliceBytes);
          rest = rest.subarray(slice.length);
          if (direction === 'toTarget') this.bytesToTarget += slice.length;
          else this.bytesToClient += slice.length;
          if (!to.write(slice) && (await settle(to, 'drain')) !== 'drain') return;
          if (rate !== null) await sleep((slice.length * 1000) / rate);
        }
      }
      to.end();
    } catch {
      this.drop(pair, true);
    }
  }

  private drop(pair: Pair, reset: boolean): void {
    if (!this.pairs.delete(pair)) return;
    for (const socket of [pair.client, pair.upstream]) {
      if (socket === null || socket.destroyed) continue;
      if (reset) socket.resetAndDestroy();
      else socket.end(() => socket.destroy());
    }
  }
}
