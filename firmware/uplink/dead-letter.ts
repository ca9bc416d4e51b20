import type { StoredRecord } from '../store/types.js';
import type { PumpLane } from './drain.js';

/**
 * Where a message goes that the cloud will not take: a lane of the same ring log, so it keeps the log's
 * durability, TTL and quota, and `outpost log dump --lane deadletter` shows it with its reason. Without this
 * one refused message holds back everything stored behind it, for ever (edgeHub issue #5364).
 */
export const DEAD_LETTER_LANE_NAME = 'deadletter';

/** Properties the dead-letter copy carries on top of the original's (`$`: system fields, see message.ts). */
export const DEAD_LETTER_KEY = {
  reason: '$deadLetterReason',
  lane: '$deadLetterLane',
  seq: '$deadLetterSeq',
  attempts: '$deadLetterAttempts',
} as const;

/** Distinct reasons counted one by one; more than this (a broker inventing codes) count under `other`. */
const DEAD_LETTER_REASONS_MAX = 32;

export interface DeadLetterStatus {
  /** Messages moved to the dead-letter lane since start. */
  total: number;
  byReason: Record<string, number>;
  last: { lane: string; seq: number; reason: string; atWallMs: number } | null;
}

interface Charge {
  seq: number;
  attempts: number;
  /** Why the last attempt failed, for the dead-letter record once the budget is spent. */
  reason: string;
  /** No attempt is left: the budget is spent or the refusal was permanent. */
  exhausted: boolean;
  /** Its dead-letter copy is durable: a connection that died before the original was acked skips it. */
  lettered: boolean;
}

/**
 * Attempts per message, across connections. Only the message a failure points at is charged (the one the
 * broker refused, or the oldest unacknowledged when a connection dies), and a lane's charged message is
 * always its oldest undelivered one, so one entry per lane is enough: a charge for a later seq means the
 * earlier one left.
 */
export class AttemptLedger {
  private readonly byLane = new Map<string, Charge>();

  /** `attemptsMax` Infinity: nothing is ever given up on (a pump without a dead-letter lane). */
  constructor(private readonly attemptsMax: number) {}

  /** Counts a failed attempt (`permanent`: the last one there will be); true once no attempt is left. */
  charge(lane: string, seq: number, reason: string, permanent = false): boolean {
    const now = this.byLane.get(lane);
    const attempts = now !== undefined && now.seq === seq ? now.attempts + 1 : 1;
    const exhausted = permanent || attempts >= this.attemptsMax;
    this.byLane.set(lane, { seq, attempts, reason, exhausted, lettered: false });
    return exhausted;
  }

  /** The spent budget of a message about to be sent again, or null while it may still be tried. */
  spent(lane: string, seq: number): Charge | null {
    const now = this.byLane.get(lane);
    return now !== undefined && now.seq === seq && now.exhausted ? now : null;
  }

  lettered(lane: string, seq: number): void {
    const now = this.byLane.get(lane);
    if (now !== undefined && now.seq === seq) now.lettered = true;
  }

  attempts(lane: string, seq: number): number {
    const now = this.byLane.get(lane);
    return now !== undefined && now.seq === seq ? now.attempts : 0;
  }
}

/** Appends dead letters and counts them by reason, for `outpost status` and metrics. */
export class DeadLetters {
  private total = 0;
  private readonly byReason = new Map<string, number>();
  private last: DeadLetterStatus['last'] = null;

  constructor(
    private readonly lane: Pick<PumpLane, 'append'>,
    private readonly wallMs: () => number,
  ) {}

  /** Resolves once the copy is durable: only then may the original be acknowledged. */
  async put(fromLane: string, record: StoredRecord, reason: string, attempts: number): Promise<void> {
    await this.lane.append({
      body: record.body,
      properties: {
        ...record.properties,
        [DEAD_LETTER_KEY.reason]: reason,
        [DEAD_LETTER_KEY.lane]: fromLane,
        [DEAD_LETTER_KEY.seq]: String(record.seq),
        [DEAD_LETTER_KEY.attempts]: String(attempts),
      },
    });
    this.total += 1;
    const key = this.byReason.has(reason) || this.byReason.size < DEAD_LETTER_REASONS_MAX ? reason : 'other';
    this.byReason.set(key, (this.byReason.get(key) ?? 0) + 1);
    this.last = { lane: fromLane, seq: record.seq, reason, atWallMs: this.wallMs() };
  }

  status(): DeadLetterStatus {
    return { total: this.total, byReason: Object.fromEntries(this.byReason), last: this.last };
  }
}
