import type { Clock } from '../clock.js';
import type { BackoffOptions } from './backoff.js';
import type { DeadLetterStatus } from './dead-letter.js';
import type { PumpLane } from './cursor.js';
import type { ThrottleStatus } from './throttle.js';
import type { PumpSessionFactory } from './drain-host.js';
import { UplinkError, type UplinkTransport } from './types.js';
import { LANE_WEIGHT_MAX, LIMIT_RANGES } from '../config/uplink-limits.js';

export {
  INFLIGHT_MESSAGES_DEFAULT,
  INFLIGHT_MESSAGES_HARD_MAX,
  LIMIT_RANGES,
  LINK_UP_JITTER_MS_MAX_DEFAULT,
} from '../config/uplink-limits.js';

/** The pump's options, limits and status shapes, validated with errors that name the option. */

/** What Pump.stop may take when the caller names no budget: a third of the gateway's 15 s stop. */
export const PUMP_STOP_BUDGET_MS_DEFAULT = 5_000;
/** Of a stop's budget, kept back for the MQTT DISCONNECT after in-flight publishes are done, ms. */
export const STOP_CLOSE_RESERVE_MS = 1_000;

export interface PumpLaneConfig {
  lane: PumpLane;
  /** Share of the window when several lanes have backlog; a lane of weight 1 is never starved. Default 1. */
  weight?: number;
}

/** Run on every (re)connect, in order, before the drain: settings and identities, then twins. */
export interface ResyncHook {
  name: string;
  run(transport: UplinkTransport): Promise<void>;
}

export interface PumpOptions {
  /** This gateway's id; the first part of every stable message id. */
  gatewayId: string;
  transport: UplinkTransport;
  /** Lanes in priority order (first = highest); each drains in its own stored order. At least one. */
  lanes: PumpLaneConfig[];
  /** Makes each connection's drain session; default one DrainSession on `transport` (edge mode: edge/). */
  createSession?: PumpSessionFactory;
  clock?: Clock;
  /** Publishes awaiting PUBACK at once, messages. Default 100, at most INFLIGHT_MESSAGES_HARD_MAX. */
  inflightMax?: number;
  /** Records read from a lane per read, records. Default 256. */
  readBatchRecordsMax?: number;
  /** Bytes read from a lane per read, bytes. Default 1 MiB. */
  readBatchBytesMax?: number;
  /** Contiguously acknowledged records between two store acks, records. Default 64. */
  ackBatchRecords?: number;
  /** Cap on body bytes sent per second, for metered links; 0 = none. Default 0. */
  bytesPerSecMax?: number;
  /** A connect attempt that has not succeeded by then is torn down, ms. Default 15,000. */
  connectTimeoutMs?: number;
  /** A publish unacknowledged for this long means the link is dead (a black hole); torn down, ms. Default 20,000. */
  publishTimeoutMs?: number;
  /** Longest a single resync hook may run, ms. Default 30,000. */
  resyncTimeoutMs?: number;
  /**
   * Tries per message before it goes to the dead-letter lane, counting refusals of the moment (quota), a
   * connection that died with it the oldest in flight, and a PUBACK that never came while the broker still
   * answered pings. Default 5. A permanent refusal (not authorized, too large) needs no second try.
   */
  publishAttemptsMax?: number;
  /** A connection must last this long before the backoff starts over from its base, ms. Default 30,000. */
  stableConnectionMs?: number;
  /** How long a probe (PINGREQ on a link-up notice or a missing PUBACK) waits for its answer, ms. Default 2,000. */
  probeTimeoutMs?: number;
  /** Ceiling of the random delay from a link-up notice to the connect, ms; 0 connects at once. Default 800. */
  linkUpJitterMsMax?: number;
  /** Ceiling of the random delay before the first connect after start(), ms; 0 connects at once. Default 0. */
  bootJitterMsMax?: number;
  /** The ring log's dead-letter lane; without one nothing is given up on and a refused message holds its lane. */
  deadLetterLane?: Pick<PumpLane, 'append'>;
  backoff?: BackoffOptions;
  resyncHooks?: ResyncHook[];
  /** Backlog bytes and age from the store (RingLog.stats()); without it status counts records only. */
  backlogStats?: () => { bytes: number; oldestAgeMs: number };
  /** Every error the pump recovers from, for the log. */
  onError?: (err: Error) => void;
}

export type LinkState = 'stopped' | 'connecting' | 'resyncing' | 'up' | 'backoff';

export interface PumpStatus {
  link: LinkState;
  protocol: string;
  lastError: { message: string; code: string | null; atWallMs: number } | null;
  /** The last probe of a connection that looked up (after a wake or a missing PUBACK): answered or not. */
  lastProbe: { answered: boolean; atWallMs: number } | null;
  /** The last link-up notice (interface, modem hook, signal) and when it came. */
  lastWake: { reason: string; atWallMs: number } | null;
  /** Wall time of the current connection's start; null when not up. */
  connectedSinceWallMs: number | null;
  connects: number;
  /** Ceiling of the next backoff delay, ms. */
  backoffCeilingMs: number;
  /** Time left in the current backoff sleep, ms; null when not in backoff. */
  retryInMs: number | null;
  inflight: number;
  /** The window in force: inflightMax, or the server's Receive Maximum when lower; null when not connected. */
  windowMax: number | null;
  /** Messages moved to the dead-letter lane, by reason. */
  deadLetters: DeadLetterStatus;
  /** Connections the server ended with a throttling answer (throttle.ts), by reason. */
  throttled: ThrottleStatus;
  /** The bandwidth cap in force, bytes/s; 0 = none. */
  bytesPerSecMax: number;
  backlog: { records: number; bytes: number | null; oldestAgeMs: number | null };
  /** Messages acknowledged per second over the last ten seconds. */
  drainRatePerSec: number;
  /** Backlog ÷ drain rate; null while nothing drains. */
  etaSecs: number | null;
}

export type LimitName = keyof typeof LIMIT_RANGES;
/** Lanes a pump may drain; the weighted pick walks all of them per message. */
const PUMP_LANES_MAX = 16;

/** Returns `value` if it is within the limit's range; throws an error naming the limit otherwise. */
export function checkLimit(name: LimitName, value: number): number {
  const [min, max, , unit] = LIMIT_RANGES[name];
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new UplinkError('INVALID', `"${name}" must be an integer from ${min} to ${max} ${unit}, got ${value}`);
  }
  return value;
}

export function resolveLimits(opts: PumpOptions): Record<LimitName, number> {
  const out = {} as Record<LimitName, number>;
  for (const name of Object.keys(LIMIT_RANGES) as LimitName[]) {
    out[name] = checkLimit(name, opts[name] ?? LIMIT_RANGES[name][2]);
  }
  return out;
}

export function validateLanes(lanes: PumpLaneConfig[]): Array<{ lane: PumpLane; weight: number }> {
  if (!Array.isArray(lanes) || lanes.length === 0 || lanes.length > PUMP_LANES_MAX) {
    throw new UplinkError('INVALID', `"lanes" must list 1 to ${PUMP_LANES_MAX} lanes, got ${lanes?.length}`);
  }
  return lanes.map(({ lane, weight = 1 }) => {
    if (!Number.isInteger(weight) || weight < 1 || weight > LANE_WEIGHT_MAX) {
      const what = `"weight" of lane "${lane.name}" must be an integer from 1 to ${LANE_WEIGHT_MAX}`;
      throw new UplinkError('INVALID', `${what}, got ${weight}`);
    }
    return { lane, weight };
  });
}
