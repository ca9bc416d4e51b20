import { UplinkError } from './types.js';

/**
 * The server's "too many of you, come back later" answers, told apart from a link that failed. IoT Hub
 * throttles new connections per unit (S1: 100/s for the whole hub however many units), a broker behind a
 * rate-limited listener refuses a CONNECT over its rate: a fleet that comes back together after an outage
 * meets these, and reconnecting on the ordinary backoff (which a link-up wake even resets) would keep the
 * whole fleet knocking at the rate limit. A throttled pump waits at least THROTTLED_BACKOFF_MS_MIN.
 */

/**
 * Floor of the wait after a throttling answer, ms. IoT Hub's and most brokers' connection limits are counted
 * per second, so two seconds puts a refused gateway into a later window for certain; with the full-jitter
 * draw on top (Backoff.throttledDelayMs) a refused fleet comes back over two to four seconds. Not the SDK's
 * 10 s throttled minimum (azure-iot-common's retry policy): that would make every refused gateway miss the
 * fleet's 10 s draining target when a smaller floor already keeps it under the limit.
 */
export const THROTTLED_BACKOFF_MS_MIN = 2_000;

/**
 * CONNACK codes that mean the server is overloaded, not that the client is wrong. MQTT 3.1.1 (3.2.2.3) has
 * only 3 Server unavailable for it, which IoT Hub sends to a throttled connect; MQTT 5 (3.2.2.2) has 0x88,
 * its successor, and 0x89 Server busy, 0x97 Quota exceeded, 0x9F Connection rate exceeded. Codes 1..5 are
 * 3.1.1's and 0x80 up MQTT 5's, so one table serves both.
 */
const CONNACK_THROTTLES: Record<number, string> = {
  3: 'connack-3-server-unavailable',
  0x88: 'connack-0x88-server-unavailable',
  0x89: 'connack-0x89-server-busy',
  0x97: 'connack-0x97-quota-exceeded',
  0x9f: 'connack-0x9f-connection-rate-exceeded',
};

/**
 * DISCONNECT reason codes (MQTT 5, 3.14.2.1) with which a server ends a live session for load: 0x89 Server
 * busy, 0x97 Quota exceeded, 0x9F Connection rate exceeded. Not 0x8B Server shutting down: a restart,
 * after which the ordinary backoff (short, jittered) is what gets the fleet back soonest.
 */
const DISCONNECT_THROTTLES: Record<number, string> = {
  0x89: 'disconnect-0x89-server-busy',
  0x97: 'disconnect-0x97-quota-exceeded',
  0x9f: 'disconnect-0x9f-connection-rate-exceeded',
};

/** An MQTT 5 server's DISCONNECT, as the mqtt transport reports the loss it caused. */
export class ServerDisconnectError extends Error {
  override readonly name = 'ServerDisconnectError';

  constructor(
    readonly reasonCode: number,
    reasonString?: string,
  ) {
    const hex = `0x${reasonCode.toString(16).padStart(2, '0')}`;
    super(`the server sent DISCONNECT ${hex}${reasonString === undefined ? '' : ` (${reasonString})`}`);
  }
}

/** Refusals of one message (refusal.ts, azure-refusal.ts) that say the same: the sender is over a rate. */
const REFUSAL_THROTTLES = new Set(['mqtt5-0x97-quota-exceeded', 'azure-throttled', 'azure-quota-exceeded']);

/**
 * azure-iot-common's error classes for throttling, matched by name as azure-refusal.ts does. The SDK turns
 * IoT Hub's answer to a throttled MQTT connect, CONNACK 3, into ServiceUnavailableError, and the mqtt.js
 * error it keeps (transportError) has lost the code by then, so the class is all there is to go by.
 */
const SDK_THROTTLES: Record<string, string> = {
  ThrottlingError: 'azure-throttled',
  IotHubQuotaExceededError: 'azure-quota-exceeded',
  ServiceUnavailableError: 'azure-service-unavailable',
};

/** HTTP 429 Too Many Requests, IoT Hub's throttling status on its HTTPS endpoints. */
const HTTP_TOO_MANY_REQUESTS = 429;
/** Causes followed from the error the pump caught: the SDKs wrap two or three deep. */
const CAUSE_DEPTH_MAX = 6;

interface Inspectable {
  name?: unknown;
  message?: unknown;
  code?: unknown;
  statusCode?: unknown;
  response?: { statusCode?: unknown };
  cause?: unknown;
  /** azure-iot-mqtt-base keeps mqtt.js's own error here. */
  transportError?: unknown;
}

function ownReason(e: Inspectable): string | null {
  if (e instanceof ServerDisconnectError) return DISCONNECT_THROTTLES[e.reasonCode] ?? null;
  if (e instanceof UplinkError && e.refusal !== null) {
    return REFUSAL_THROTTLES.has(e.refusal.reason) ? e.refusal.reason : null;
  }
  if (typeof e.name === 'string' && Object.hasOwn(SDK_THROTTLES, e.name)) return SDK_THROTTLES[e.name]!;
  if (e.statusCode === HTTP_TOO_MANY_REQUESTS || e.response?.statusCode === HTTP_TOO_MANY_REQUESTS) return 'http-429';
  // mqtt.js (v4 inside the Azure SDK and v5) names a refused CONNACK "Connection refused: ..." with the code;
  // the message check keeps a PUBACK's or DISCONNECT's reason code out.
  const refused = typeof e.message === 'string' && e.message.startsWith('Connection refused');
  if (!refused || typeof e.code !== 'number' || !Object.hasOwn(CONNACK_THROTTLES, e.code)) return null;
  return CONNACK_THROTTLES[e.code]!;
}

/** The throttling reason behind `err` or any of its causes; null when it is some other failure. */
export function throttleReason(err: unknown): string | null {
  const seen = new Set<unknown>();
  const queue: unknown[] = [err];
  while (queue.length > 0 && seen.size < CAUSE_DEPTH_MAX) {
    const e = queue.shift();
    if (e === null || typeof e !== 'object' || seen.has(e)) continue;
    seen.add(e);
    const reason = ownReason(e as Inspectable);
    if (reason !== null) return reason;
    queue.push((e as Inspectable).cause, (e as Inspectable).transportError);
  }
  return null;
}

export interface ThrottleStatus {
  /** Connections and sessions the server ended with a throttling answer since start. */
  total: number;
  byReason: Record<string, number>;
  last: { reason: string; atWallMs: number } | null;
}

/** Counts throttling answers by reason, for status and metrics. */
export class ThrottleCounter {
  private readonly counts: Record<string, number> = {};
  private total = 0;
  private last: ThrottleStatus['last'] = null;

  constructor(private readonly wallMs: () => number) {}

  /** The reason when `err` is a throttling answer (and counts it); null otherwise. */
  note(err: unknown): string | null {
    const reason = throttleReason(err);
    if (reason === null) return null;
    this.total += 1;
    this.counts[reason] = (this.counts[reason] ?? 0) + 1;
    this.last = { reason, atWallMs: this.wallMs() };
    return reason;
  }

  status(): ThrottleStatus {
    return { total: this.total, byReason: { ...this.counts }, last: this.last };
  }
}
