import type { StoredRecord } from '../../store/types.js';
import type { PumpLane } from '../cursor.js';
import type { DrainLimits } from '../drain.js';
import { LaneCursor, type Entry, type ReadListener } from './lane-cursor.js';
import { PARK_PENDING_MS } from './limits.js';
import type { IdentityState } from './pool.js';
import type { IdentityQueues } from './queues.js';

/** What the holding lane's reader needs of the session. */
export interface HeldReaderHost {
  /** The identity's connection ('up' for the gateway's own). */
  state(identity: string): IdentityState;
  /** The identity has records waiting: its connection is opened. */
  want(identity: string): void;
  identityOf(record: StoredRecord): string;
  monoMs(): number;
}

/** The holding lane's seqs an identity's records were skipped over in (its own and others' between). */
interface Deferral {
  fromSeq: number;
  toSeq: number;
}

type ReadLimits = Pick<DrainLimits, 'readBatchRecordsMax' | 'readBatchBytesMax'>;

/**
 * The holding lane's read-ahead (held.ts), without head-of-line blocking between identities: when it is full
 * and an identity in it cannot be sent to (its connection in backoff, or not up for PARK_PENDING_MS), that
 * identity is *deferred*: its records are dropped from memory (none was sent) and only the seq range of the
 * lane they lie in is kept, and the records of it read from then on are dropped too (the range grows), so the
 * others' records behind it are read and sent. The lane is acknowledged no further than just before the
 * lowest deferred range, so nothing is acknowledged before it is delivered or dead-lettered, and a restart
 * reads it all again. Once the identity's connection is up (or IoT Hub refuses it: its records are then
 * dead-lettered), its range is read again, a page at a time as the read-ahead has room, and its records in it
 * are queued in seq order; when the whole range is read it is no longer deferred, and its later records come
 * from the read-ahead again, after those. The identity's order stays the lane's order, and memory is one
 * range per deferred identity besides the read-ahead. Re-reads go first, one read at a time with the others.
 */
export class HeldReader {
  readonly cursor: LaneCursor;
  private readonly deferrals = new Map<string, Deferral>();

  constructor(
    lane: PumpLane,
    readAheadMax: number,
    private readonly queues: IdentityQueues,
    private readonly host: HeldReaderHost,
  ) {
    this.cursor = new LaneCursor(lane, true, readAheadMax, () => this.ackCeiling());
  }

  deferred(identity: string): boolean {
    return this.deferrals.has(identity);
  }

  /** Reads what is due: a deferred identity's records again if one is ready, else the next batch. */
  read(limits: ReadLimits, listener: ReadListener): void {
    const cursor = this.cursor;
    if (cursor.reading || cursor.readRetry !== null) return;
    const ready = this.ready();
    // Room is made only when something waits for it: more of the lane to read, or a range to read again.
    const waiting = ready.size > 0 || cursor.lane.lastDurableSeq() >= cursor.nextSeq;
    if (waiting && !cursor.hasRoom(limits)) this.deferStalled();
    if (ready.size > 0 && cursor.hasRoom(limits)) return this.reread(ready, limits, listener);
    cursor.readAhead(limits, { ...listener, take: (record) => this.take(record, listener) });
  }

  /** A record read ahead: dropped while its identity is deferred (its range grows to it), else taken. */
  private take(record: StoredRecord, listener: ReadListener): void {
    const deferral = this.deferrals.get(this.host.identityOf(record));
    if (deferral === undefined) listener.take(record);
    else deferral.toSeq = Math.max(deferral.toSeq, record.seq);
  }

  /** Nothing is acknowledged from the lowest deferred range on. */
  private ackCeiling(): number {
    let ceiling = Infinity;
    for (const { fromSeq } of this.deferrals.values()) ceiling = Math.min(ceiling, fromSeq - 1);
    return ceiling;
  }

  /** Deferred identities whose records can go now (up, or refused: dead-lettered); closed ones are opened. */
  private ready(): Map<string, Deferral> {
    const ready = new Map<string, Deferral>();
    if (this.deferrals.size === 0) return ready;
    for (const [identity, deferral] of this.deferrals) {
      const state = this.host.state(identity);
      if (state === 'closed') this.host.want(identity);
      else if (state === 'up' || state === 'refused') ready.set(identity, deferral);
    }
    return ready;
  }

  /** The full read-ahead's identities that cannot be sent to, with nothing in flight: deferred. */
  private deferStalled(): void {
    const nowMs = this.host.monoMs();
    const stalled = new Set<string>();
    for (const [identity, queue] of this.queues) if (this.stalled(identity, queue, nowMs)) stalled.add(identity);
    if (stalled.size === 0) return;
    const kept: Entry[] = [];
    for (const entry of this.cursor.entries) {
      if (entry.state !== 'queued' || !stalled.has(entry.identity)) {
        kept.push(entry);
        continue;
      }
      const seq = entry.record.seq;
      const deferral = this.deferrals.get(entry.identity);
      if (deferral === undefined) this.deferrals.set(entry.identity, { fromSeq: seq, toSeq: seq });
      else ((deferral.fromSeq = Math.min(deferral.fromSeq, seq)), (deferral.toSeq = Math.max(deferral.toSeq, seq)));
    }
    this.cursor.entries = kept;
    for (const identity of stalled) {
      const upstream = this.queues.get(identity)!.filter((entry) => entry.cursor !== this.cursor);
      if (upstream.length > 0) this.queues.set(identity, upstream);
      else this.queues.delete(identity);
    }
    this.cursor.shiftDone();
  }

  /** As the upstream lanes park an identity (session.ts parkHead): in backoff, or not up for PARK_PENDING_MS. */
  private stalled(identity: string, queue: Entry[], nowMs: number): boolean {
    if (this.queues.sentOf(identity) > 0) return false;
    const state = this.host.state(identity);
    if (state === 'up' || state === 'renewing' || state === 'refused') return false;
    const first = queue.find((entry) => entry.cursor === this.cursor);
    return first !== undefined && (state === 'backoff' || nowMs - first.queuedAtMs >= PARK_PENDING_MS);
  }

  /**
   * One page of the lane from the lowest ready range on: the ready identities' records in their ranges are
   * taken while the read-ahead has room; each range then starts after what was read. A range read to its
   * end is no longer deferred.
   */
  private reread(ready: Map<string, Deferral>, limits: ReadLimits, listener: ReadListener): void {
    const cursor = this.cursor;
    const fromSeq = Math.min(...[...ready.values()].map((deferral) => deferral.fromSeq));
    const toSeq = Math.max(...[...ready.values()].map((deferral) => deferral.toSeq));
    cursor.reading = true;
    const page = { recordsMax: limits.readBatchRecordsMax, bytesMax: limits.readBatchBytesMax };
    cursor.lane.read(fromSeq, page).then(
      (records) => {
        cursor.reading = false;
        if (listener.ended()) return;
        const stopSeq = this.takeAgain(records, ready, toSeq, listener);
        for (const [identity, deferral] of ready) {
          deferral.fromSeq = Math.max(deferral.fromSeq, stopSeq);
          if (deferral.fromSeq > deferral.toSeq) this.deferrals.delete(identity);
        }
        listener.taken();
      },
      (err: unknown) => cursor.readFailed(err, listener),
    );
  }

  /** Takes the page's records of the ready ranges while there is room; the seq the ranges go on from. */
  private takeAgain(
    records: StoredRecord[],
    ready: Map<string, Deferral>,
    toSeq: number,
    listener: ReadListener,
  ): number {
    let room = this.cursor.readAheadMax - this.cursor.entries.length;
    // An empty page: every record from there on had expired (as for a read ahead).
    if (records.length === 0) return toSeq + 1;
    for (const record of records) {
      if (record.seq > toSeq) return toSeq + 1;
      const deferral = ready.get(this.host.identityOf(record));
      if (deferral === undefined || record.seq < deferral.fromSeq || record.seq > deferral.toSeq) continue;
      if (room === 0) return record.seq;
      room -= 1;
      listener.take(record);
    }
    return records.at(-1)!.seq + 1;
  }
}
