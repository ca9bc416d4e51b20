import type { StoredRecord } from '../../store/types.js';
import type { PumpLane } from '../cursor.js';
import { DEAD_LETTER_KEY } from '../dead-letter.js';
import { HELD_KEY, type HeldLane } from './held.js';
import { IDENTITY_REFUSED } from './lane-cursor.js';

/**
 * The marker a re-send leaves in the dead-letter lane: every `identity-refused` record of `identity` up to
 * that dead-letter seq went back upstream. The lane is append-only (its records stay for `outpost log dump`
 * until TTL or quota drop them), so the marker, in the same durable log, is what keeps a restart from sending
 * them a second time; `outpost log dump --lane deadletter` shows it beside the records it covers.
 */
export const RESENT_KEY = {
  identity: '$deadLetterResent',
  upToSeq: '$deadLetterResentUpTo',
} as const;

export interface ResendStatus {
  /** Dead-lettered records sent again since start, as their identity came back. */
  resent: number;
  /** Of those due again, the ones whose TTL had run out meanwhile (counted, not sent). */
  expired: number;
  /** Identities with dead letters that wait for the identity to come back. */
  waiting: number;
}

interface ReadLimits {
  readBatchRecordsMax: number;
  readBatchBytesMax: number;
}

/**
 * Dead letters of refused identities, sent again once IoT Hub takes the identity back (re-added or enabled
 * in the registry, seen by a scope refresh or the pool's recheck). They go through the holding lane, in
 * dead-letter order, which is the identity's stored order: the session parks the identity's newer records
 * behind them, so its order stays the stored order. Each keeps its original lane and seq (and so its message
 * id) and its original expiry. Only `identity-refused` letters: a message IoT Hub refused for itself (too
 * large, malformed) would be refused again.
 */
export class DeadLetterResend {
  /** Dead letters per identity not yet sent again. */
  private readonly waiting = new Map<string, number>();
  /** Per identity, the dead-letter seq its letters were sent again up to (from the markers). */
  private readonly resentUpTo = new Map<string, number>();
  private scanned = false;
  /** Re-sends under way, per identity: a session that ends meanwhile leaves the next one to join it. */
  private readonly running = new Map<string, Promise<number>>();
  private resent = 0;
  private expired = 0;

  constructor(
    private readonly lane: PumpLane,
    private readonly identityOf: (record: StoredRecord) => string,
    private readonly storeNowMs: () => number,
  ) {}

  /** Reads the dead-letter lane once (the first session after start): which identities have letters waiting. */
  async scan(limits: ReadLimits): Promise<void> {
    if (this.scanned) return;
    const letters: StoredRecord[] = [];
    await this.each(limits, (record) => void (refusedLetter(record) && letters.push(record)));
    for (const record of letters) this.noted(this.identityOf(record), record.seq);
    this.scanned = true;
  }

  /** A record of a refused identity was dead-lettered (at dead-letter seq `deadSeq` when known). */
  noted(identity: string, deadSeq = Infinity): void {
    if (deadSeq <= (this.resentUpTo.get(identity) ?? 0)) return;
    this.waiting.set(identity, (this.waiting.get(identity) ?? 0) + 1);
  }

  /** Identities with letters waiting (read on every dispatch: no array made). */
  get waitingCount(): number {
    return this.waiting.size;
  }

  identities(): string[] {
    return [...this.waiting.keys()];
  }

  status(): ResendStatus {
    return { resent: this.resent, expired: this.expired, waiting: this.waiting.size };
  }

  /**
   * Copies the identity's waiting letters to the holding lane, in order, each page's copies issued together
   * (the holding lane numbers copies in call order), then leaves the marker. Resolves with the copies made.
   */
  resend(identity: string, held: HeldLane, limits: ReadLimits): Promise<number> {
    const running = this.running.get(identity);
    if (running !== undefined) return running;
    const work = this.copy(identity, held, limits).finally(() => this.running.delete(identity));
    this.running.set(identity, work);
    return work;
  }

  private async copy(identity: string, held: HeldLane, limits: ReadLimits): Promise<number> {
    const from = this.resentUpTo.get(identity) ?? 0;
    let upTo = from;
    let copies = 0;
    await this.each(limits, async (record) => {
      if (record.seq <= from || !refusedLetter(record) || this.identityOf(record) !== identity) return;
      upTo = record.seq;
      const original = restored(record);
      if (original.expiresAtStoreMs !== 0 && original.expiresAtStoreMs <= this.storeNowMs()) {
        this.expired += 1;
        return;
      }
      copies += 1;
      await held.move(original.properties[HELD_KEY.lane]!, original, identity);
    });
    if (upTo > from) {
      await this.lane.append({
        body: Buffer.alloc(0),
        properties: { [RESENT_KEY.identity]: identity, [RESENT_KEY.upToSeq]: String(upTo) },
      });
      this.resentUpTo.set(identity, upTo);
    }
    this.waiting.delete(identity);
    this.resent += copies;
    return copies;
  }

  private marked(identity: string, upToSeq: number): void {
    this.resentUpTo.set(identity, Math.max(this.resentUpTo.get(identity) ?? 0, upToSeq));
  }

  /** Every record of the lane from its cursor on, in order; markers are taken in as they pass. */
  private async each(limits: ReadLimits, visit: (record: StoredRecord) => void | Promise<void>): Promise<void> {
    let next = this.lane.ackedSeq() + 1;
    const last = this.lane.lastDurableSeq();
    while (next <= last) {
      const page = { recordsMax: limits.readBatchRecordsMax, bytesMax: limits.readBatchBytesMax };
      const records = await this.lane.read(next, page);
      if (records.length === 0) break;
      const moves: Array<void | Promise<void>> = [];
      for (const record of records) {
        const marked = record.properties[RESENT_KEY.identity];
        if (marked === undefined) moves.push(visit(record));
        else this.marked(marked, Number(record.properties[RESENT_KEY.upToSeq]));
      }
      await Promise.all(moves);
      next = records.at(-1)!.seq + 1;
    }
  }
}

function refusedLetter(record: StoredRecord): boolean {
  return record.properties[DEAD_LETTER_KEY.reason] === IDENTITY_REFUSED;
}

/** The original record a dead letter is the copy of: its properties, lane, seq and expiry. */
function restored(letter: StoredRecord): StoredRecord {
  const properties: Record<string, string> = {};
  const dropped = new Set<string>(Object.values(DEAD_LETTER_KEY));
  for (const [key, value] of Object.entries(letter.properties)) if (!dropped.has(key)) properties[key] = value;
  properties[HELD_KEY.lane] ??= letter.properties[DEAD_LETTER_KEY.lane] ?? 'upstream';
  properties[HELD_KEY.seq] ??= letter.properties[DEAD_LETTER_KEY.seq] ?? String(letter.seq);
  const expiry = letter.properties[DEAD_LETTER_KEY.expiresAtStoreMs];
  return { ...letter, properties, expiresAtStoreMs: expiry === undefined ? letter.expiresAtStoreMs : Number(expiry) };
}
