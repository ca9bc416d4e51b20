import type { AppendInput, StoredRecord } from '../store/types.js';

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
  /** The original's expiry (store clock, 0 = never): a letter sent again keeps the original's TTL. */
  expiresAtStoreMs: '$deadLetterExpiresAt',
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
 * Messages per lane with attempts on record. Only the messages a failure points at are charged (the one
 * the broker refused, or the oldest unacknowledged when a connection dies), all within one window of the
 * lane's acknowledged cursor; entries at or below it are dropped at every charge. Past this bound the
 * lowest seq is forgotten: it may then be tried a few more times, never fewer.
 */
const CHARGED_SEQS_PER_LANE_MAX = 64;

/**
 * Attempts per message, across connections (not across restarts: a restart gives every message its budget
 * back, which costs at most publishAttemptsMax more tries).
 */
export class AttemptLedger {
  private readonly byLane = new Map<string, Map<number, Charge>>();

  /** `attemptsMax` Infinity: nothing is ever given up on (a pump without a dead-letter lane). */
  constructor(private readonly attemptsMax: number) {}

  /**
   * Counts a failed attempt (`permanent`: the last one there will be); true once no attempt is left.
   * `ackedSeq` is the lane's acknowledged cursor: charges at or below it are settled and dropped.
   */
  charge(lane: string, seq: number, reason: string, ackedSeq: number, permanent = false): boolean {
    let charges = this.byLane.get(lane);
    if (charges === undefined) this.byLane.set(lane, (charges = new Map()));
    for (const charged of charges.keys()) if (charged <= ackedSeq) charges.delete(charged);
    const now = charges.get(seq);
    const attempts = (now?.attempts ?? 0) + 1;
    const exhausted = (now?.exhausted ?? false) || permanent || attempts >= this.attemptsMax;
    const lettered = now?.lettered ?? false;
    charges.set(seq, { seq, attempts, reason: now?.exhausted ? now.reason : reason, exhausted, lettered });
    if (charges.size > CHARGED_SEQS_PER_LANE_MAX) charges.delete(Math.min(...charges.keys()));
    return exhausted;
  }

  /** The spent budget of a message about to be sent again, or null while it may still be tried. */
  spent(lane: string, seq: number): Charge | null {
    const now = this.byLane.get(lane)?.get(seq);
    return now !== undefined && now.exhausted ? now : null;
  }

  lettered(lane: string, seq: number): void {
    const now = this.byLane.get(lane)?.get(seq);
    if (now !== undefined) now.lettered = true;
  }

  attempts(lane: string, seq: number): number {
    return this.byLane.get(lane)?.get(seq)?.attempts ?? 0;
  }
}

/**
 * All DeadLetters needs of its lane (the store's LaneHost pattern): a narrow interface here, so the
 * drain that uses DeadLetters and this file do not import each other.
 */
export interface DeadLetterLane {
  append(input: AppendInput): Promise<number>;
}

/** Appends dead letters and counts them by reason, for `outpost status` and metrics. */
export class DeadLetters {
  private total = 0;
  private readonly byReason = new Map<string, number>();
  private last: DeadLetterStatus['last'] = null;

  constructor(
    private readonly lane: DeadLetterLane,
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
        [DEAD_LETTER_KEY.expiresAtStoreMs]: String(record.expiresAtStoreMs),
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
