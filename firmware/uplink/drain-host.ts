import type { Clock } from '../clock.js';
import type { PumpLane } from './cursor.js';
import type { AttemptLedger, DeadLetters } from './dead-letter.js';
import type { RateMeter, TokenBucket } from './rate.js';
import type { LossRecovery } from './recovery.js';
import type { UplinkTransport } from './types.js';

/** The seams between the pump and a drain session: what a session gets, and what the pump needs of it. */

export interface DrainLimits {
  inflightMax: number;
  readBatchRecordsMax: number;
  readBatchBytesMax: number;
  ackBatchRecords: number;
}

export interface DrainHost {
  readonly transport: UplinkTransport;
  readonly clock: Clock;
  readonly gatewayId: string;
  readonly limits: DrainLimits;
  /** Publishes in flight at once on this connection: ours and the server's Receive Maximum, the lower. */
  readonly windowMax: number;
  /** Set after a loss that charged a message in flight: the window starts at one (see recovery.ts). */
  readonly recovery: LossRecovery | null;
  readonly ledger: AttemptLedger;
  /** Null only where no dead-letter lane was given (tests): an undeliverable message then holds its lane. */
  readonly deadLetters: DeadLetters | null;
  readonly delivered: RateMeter;
  /** Rate 0 = no cap. */
  readonly bucket: TokenBucket;
  reportError(err: unknown): void;
}

/**
 * What the pump needs of a drain session: DrainSession (one connection), or edge mode's, which spreads the
 * lanes over one connection per identity (firmware/uplink/edge/session.ts).
 */
export interface PumpSession {
  readonly done: Promise<void>;
  readonly windowMax: number;
  readonly inflight: number;
  readonly recoveryAfter: LossRecovery | null;
  oldestInflightSentAtMs(): number | null;
  run(): Promise<void>;
  end(cause?: Error, charge?: string): void;
  quiesce(): Promise<void>;
  rateChanged(): void;
  pause(): void;
}

/** Makes the session of each successful connect (PumpOptions.createSession). */
export type PumpSessionFactory = (host: DrainHost, lanes: Array<{ lane: PumpLane; weight: number }>) => PumpSession;
