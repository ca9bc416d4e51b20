import type { StoredRecord } from '../../store/types.js';
import type { PumpLane } from '../cursor.js';

/**
 * The holding lane of edge mode. The upstream lane is acknowledged contiguously, so one identity whose
 * connection is down would hold the cursor at its oldest record: the ring log could free nothing behind it,
 * and after a restart every other identity's records from there on would go again. Instead an identity whose
 * connection is in backoff (or that waits too long for one) is *parked*: its records are copied, in stored
 * order, to this lane (TTL and quota apply, as to every lane), and only then count as done in the upstream
 * lane, so its cursor moves on. From then on every later record of a parked identity goes the same way, so
 * the identity's order stays the stored order: its older records all come out of this lane first. It stays
 * parked until its connection is up and every copy here is delivered (or dead-lettered); then its records
 * go straight from the upstream lane again.
 *
 * This lane is read with a bounded read-ahead (EDGE_READ_AHEAD_RECORDS_MAX) and acknowledged contiguously
 * too, so one parked identity that stays unreachable with more copies here than the read-ahead holds would
 * keep every other identity's copies behind its own from being read. Its reader (held-reader.ts) *defers*
 * such an identity instead: its copies are dropped from memory and only the seq range they lie in is kept,
 * the others' copies behind them are read and sent, and once its connection is up (or IoT Hub refuses it:
 * dead-letter lane) that range is read again (every record in it, a page at a time, for all the identities
 * ready by then together), its copies in it queued in order before its later ones. Memory is one range per
 * deferred identity besides the read-ahead. A deferred identity is still parked. This lane is acknowledged
 * no further than just before the lowest deferred range, so nothing here is acknowledged before it is
 * delivered or dead-lettered: the copies behind it that were delivered meanwhile (other identities') go
 * again after a restart, in order, as duplicates. That is bounded by the TTL (the copies keep the original's
 * expiry) and ends when the identity is delivered or refused.
 *
 * A copy keeps the original's lane and seq, so its message id, and the far side's duplicate check, are the
 * original's.
 */
export const HELD_LANE_NAME = 'held';

export const HELD_KEY = {
  /** The lane and seq of the original record, for the stable message id. */
  lane: '$heldLane',
  seq: '$heldSeq',
} as const;

export class HeldLane {
  /** Copies per identity not yet delivered: an identity with any is parked. */
  private readonly counts = new Map<string, number>();
  private readonly moving = new Set<Promise<unknown>>();

  constructor(
    readonly lane: PumpLane,
    private readonly storeNowMs: () => number,
    private readonly identityOf: (record: StoredRecord) => string,
  ) {}

  parked(identity: string): boolean {
    return (this.counts.get(identity) ?? 0) > 0;
  }

  parkedIdentities(): number {
    return this.counts.size;
  }

  /**
   * Copies `record` to the holding lane; resolves once the copy is durable. Copies are numbered in call order
   * (the store assigns the seq at the call), so one identity's copies keep the order they were moved in.
   */
  move(fromLane: string, record: StoredRecord, identity: string): Promise<void> {
    this.counts.set(identity, (this.counts.get(identity) ?? 0) + 1);
    const left = record.expiresAtStoreMs - this.storeNowMs();
    // 0 is the store's "never expires"; a record about to expire keeps at least a second.
    const ttlSecs = record.expiresAtStoreMs === 0 ? 0 : Math.max(1, Math.ceil(left / 1000));
    const properties = { ...record.properties };
    properties[HELD_KEY.lane] ??= fromLane;
    properties[HELD_KEY.seq] ??= String(record.seq);
    const work = this.lane.append({ body: record.body, properties, ttlSecs }).then(
      () => undefined,
      (err: unknown) => {
        this.settled(identity);
        throw err;
      },
    );
    this.moving.add(work);
    void work.finally(() => this.moving.delete(work)).catch(() => {});
    return work;
  }

  /** A copy was delivered or dead-lettered. */
  settled(identity: string): void {
    const count = (this.counts.get(identity) ?? 0) - 1;
    if (count > 0) this.counts.set(identity, count);
    else this.counts.delete(identity);
  }

  /**
   * Counts the copies from the lane's acknowledged cursor on, at the start of every drain session: a session
   * that ended left copies delivered but not acknowledged, which go again (and are counted again).
   */
  async rescan(batchRecordsMax: number, batchBytesMax: number): Promise<void> {
    await Promise.allSettled([...this.moving]);
    this.counts.clear();
    let from = this.lane.ackedSeq() + 1;
    const last = this.lane.lastDurableSeq();
    while (from <= last) {
      const records = await this.lane.read(from, { recordsMax: batchRecordsMax, bytesMax: batchBytesMax });
      if (records.length === 0) break;
      for (const record of records) {
        const identity = this.identityOf(record);
        this.counts.set(identity, (this.counts.get(identity) ?? 0) + 1);
      }
      from = records.at(-1)!.seq + 1;
    }
  }
}

/** The lane and seq a record's message id names: the original's for a held copy. */
export function originOf(lane: string, record: StoredRecord): { lane: string; seq: number } {
  const heldSeq = record.properties[HELD_KEY.seq];
  if (heldSeq === undefined) return { lane, seq: record.seq };
  return { lane: record.properties[HELD_KEY.lane] ?? lane, seq: Number(heldSeq) };
}
