import type net from 'node:net';
import mqttPacket from 'mqtt-packet';

/**
 * A connection-rate limit for the fault proxy, the way a broker's listener or IoT Hub enforces one: a
 * token bucket of `burst` connections refilled at `acceptsPerSec`; a connection over it is refused either
 * with a TCP reset (a SYN-rate firewall) or, as an MQTT server does, with a CONNACK carrying a refusal code
 * in the client's own protocol version and then a close. acceptsPerSec 0 with burst 0 refuses every one.
 */
export interface AcceptLimit {
  acceptsPerSec: number;
  burst: number;
  /** Default: CONNACK 0x9F Connection rate exceeded (MQTT 5) / 3 Server unavailable (MQTT 3.1.1). */
  answer?: 'reset' | { connackV5: number; connackV4: number };
}

export const RATE_EXCEEDED_ANSWER = { connackV5: 0x9f, connackV4: 3 } as const;
/** A refused client that sends no CONNECT within this long is closed without an answer. */
const CONNECT_WAIT_MS = 5_000;
/** A CONNECT is a few hundred bytes; more than this before one parses is not an MQTT client. */
const CONNECT_BYTES_MAX = 64 * 1024;

/**
 * The most events within any `windowMs` (times in ms, any clock, ascending or not), as a per-second rate: a
 * burst that a one-second count would average away shows at its own rate.
 */
export function peakPerSec(timesMs: number[], windowMs: number): number {
  const times = [...timesMs].sort((a, b) => a - b);
  let peak = 0;
  for (let first = 0, last = 0; last < times.length; last += 1) {
    while (times[last]! - times[first]! >= windowMs) first += 1;
    peak = Math.max(peak, last - first + 1);
  }
  return (peak * 1000) / windowMs;
}

export class AcceptLimiter {
  private tokens: number;
  private lastMs: number;

  constructor(
    readonly limit: AcceptLimit,
    nowMs: number,
  ) {
    if (!(limit.acceptsPerSec >= 0) || !(limit.burst >= 0)) {
      const got = `${limit.acceptsPerSec}, ${limit.burst}`;
      throw new RangeError(`"acceptsPerSec" and "burst" must be at least 0, got ${got}`);
    }
    this.tokens = limit.burst;
    this.lastMs = nowMs;
  }

  /** True when a connection arriving now is within the limit (and takes its token). */
  take(nowMs: number): boolean {
    const refill = ((nowMs - this.lastMs) / 1000) * this.limit.acceptsPerSec;
    this.tokens = Math.min(this.limit.burst, this.tokens + refill);
    this.lastMs = nowMs;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

/** Refuses `socket` (paused, fresh from accept) the way `limit.answer` says. */
export function refuseConnection(socket: net.Socket, limit: AcceptLimit): void {
  const answer = limit.answer ?? RATE_EXCEEDED_ANSWER;
  if (answer === 'reset') {
    socket.resetAndDestroy();
    return;
  }
  const parser = mqttPacket.parser();
  let bytes = 0;
  const timer = setTimeout(() => socket.destroy(), CONNECT_WAIT_MS);
  socket.on('close', () => clearTimeout(timer));
  socket.on('error', () => socket.destroy());
  parser.on('error', () => socket.destroy());
  parser.on('packet', (packet) => {
    if (packet.cmd !== 'connect' || socket.destroyed) return socket.destroy();
    const v5 = packet.protocolVersion === 5;
    const connack = v5
      ? { cmd: 'connack' as const, sessionPresent: false, reasonCode: answer.connackV5 }
      : { cmd: 'connack' as const, sessionPresent: false, returnCode: answer.connackV4 };
    socket.end(mqttPacket.generate(connack, { protocolVersion: v5 ? 5 : 4 }));
    socket.pause();
  });
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
    if (bytes > CONNECT_BYTES_MAX) return socket.destroy();
    parser.parse(chunk);
  });
  socket.resume();
}
