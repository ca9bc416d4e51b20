import type { StoredRecord } from '../../store/types.js';
import type { PumpLane } from '../cursor.js';
import type { DrainHost, DrainLimits } from '../drain.js';
import { UplinkError } from '../types.js';
import { originOf } from './held.js';

/**
 * Records read ahead of the acknowledged cursor per lane: the room to skip past identities whose connection
 * is still opening (50 children at 50 connects a second take 1 s) without stalling the others. Past it an
 * upstream lane parks the identity at its head (held.ts), the holding lane defers one (held-reader.ts).
 */
export const EDGE_READ_AHEAD_RECORDS_MAX = 4_096;
/** A failed read (disk error) is tried again after this long rather than ending the session, ms. */
const READ_RETRY_MS = 1_000;

/**
 * The dead-letter reason for the records of an identity IoT Hub refuses (deleted, disabled, not a child). The
 * pool reports the refusal once; each record is counted, not reported, or one child would flood the journal.
 */
export const IDENTITY_REFUSED = 'identity-refused';

/** One record of a lane in edge mode: queued on its identity, sent, being parked or dead-lettered, done. */
export interface Entry {
  record: StoredRecord;
  identity: string;
  cursor: LaneCursor;
  state: 'queued' | 'sent' | 'moving' | 'done';
  queuedAtMs: number;
  sentAtMs: number;
}

/** What a read tells the session. */
export interface ReadListener {
  ended(): boolean;
  take(record: StoredRecord): void;
  /** After a batch was taken. */
  taken(): void;
  failed(err: unknown): void;
  /** The retry delay after a failed read is over. */
  retry(): void;
}

/**
 * One lane's read-ahead in edge mode: the records from the acknowledged cursor on, in seq order, each done
 * once delivered, parked or dead-lettered; the lane is acknowledged up to the first one not done.
 */
export class LaneCursor {
  entries: Entry[] = [];
  nextSeq: number;
  lastAckSent: number;
  reading = false;
  readRetry: NodeJS.Timeout | null = null;

  /**
   * `readAheadMax`: the records held in memory at once (EDGE_READ_AHEAD_RECORDS_MAX unless a test makes it
   * small). `ackCeiling`: the highest seq the lane may be acknowledged up to besides the read-ahead's own
   * frontier (the holding lane's deferred records, held-reader.ts).
   */
  constructor(
    readonly lane: PumpLane,
    readonly holding: boolean,
    readonly readAheadMax = EDGE_READ_AHEAD_RECORDS_MAX,
    private readonly ackCeiling: () => number = () => Infinity,
  ) {
    this.lastAckSent = lane.ackedSeq();
    this.nextSeq = this.lastAckSent + 1;
  }

  frontier(): number {
    const own = this.entries.length > 0 ? this.entries[0]!.record.seq - 1 : this.nextSeq - 1;
    return Math.min(own, this.ackCeiling());
  }

  /** An entry read: in seq order (a record read again, held-reader.ts, may come before those read since). */
  add(entry: Entry): void {
    const seq = entry.record.seq;
    if (this.entries.length === 0 || this.entries.at(-1)!.record.seq < seq) return void this.entries.push(entry);
    let low = 0;
    let high = this.entries.length;
    while (low < high) {
      const mid = (low + high) >> 1;
      if (this.entries[mid]!.record.seq < seq) low = mid + 1;
      else high = mid;
    }
    this.entries.splice(low, 0, entry);
  }

  /** Whether the read-ahead has room for a read: half a batch at least, so reads are not one record each. */
  hasRoom(limits: Pick<DrainLimits, 'readBatchRecordsMax'>): boolean {
    const room = this.readAheadMax - this.entries.length;
    return room >= Math.min(limits.readBatchRecordsMax, this.readAheadMax / 2);
  }

  /** A read failed: reported, and tried again after READ_RETRY_MS. */
  readFailed(err: unknown, listener: ReadListener): void {
    this.reading = false;
    listener.failed(err);
    this.readRetry = setTimeout(() => ((this.readRetry = null), listener.retry()), READ_RETRY_MS);
  }

  /** Drops the finished entries at the head. */
  shiftDone(): void {
    let done = 0;
    while (done < this.entries.length && this.entries[done]!.state === 'done') done += 1;
    if (done > 0) this.entries.splice(0, done);
  }

  /** Acks the store in batches: each ack may dirty a checkpoint, so one per message would be waste. */
  flushAck(ackBatchRecords: number, force: boolean): void {
    const frontier = this.frontier();
    if (frontier <= this.lastAckSent) return;
    const idle = this.entries.length === 0;
    if (!force && !idle && frontier - this.lastAckSent < ackBatchRecords) return;
    this.lane.ack(frontier);
    this.lastAckSent = frontier;
  }

  /** Reads the next batch while the read-ahead has room for half of one. */
  readAhead(limits: Pick<DrainLimits, 'readBatchRecordsMax' | 'readBatchBytesMax'>, listener: ReadListener): void {
    const batch = Math.min(limits.readBatchRecordsMax, this.readAheadMax - this.entries.length);
    if (this.reading || this.readRetry !== null || !this.hasRoom(limits)) return;
    const durable = this.lane.lastDurableSeq();
    if (durable < this.nextSeq) return;
    this.reading = true;
    this.lane.read(this.nextSeq, { recordsMax: batch, bytesMax: limits.readBatchBytesMax }).then(
      (records) => {
        this.reading = false;
        if (listener.ended()) return;
        const last = records.at(-1);
        // An empty answer means every durable record from there on had expired: step past them.
        this.nextSeq = last === undefined ? Math.max(this.nextSeq, durable + 1) : last.seq + 1;
        for (const record of records) listener.take(record);
        listener.taken();
      },
      (err: unknown) => this.readFailed(err, listener),
    );
  }
}

/**
 * Copies an entry to the dead-letter lane under its original lane and seq; resolves once durable, rejects
 * with an error that names the record.
 */
export async function deadLetterEntry(
  host: DrainHost,
  entry: Entry,
  reason: string,
  attempts: number,
  quiet: boolean,
): Promise<void> {
  const box = host.deadLetters;
  const { lane, seq } = originOf(entry.cursor.lane.name, entry.record);
  const what = `${host.gatewayId}:${lane}:${seq} of "${entry.identity}"`;
  if (box === null)
    throw new UplinkError('REFUSED', `${what} cannot be delivered (${reason}) and there is no dead-letter lane`);
  try {
    await box.put(lane, { ...entry.record, seq }, reason, attempts);
  } catch (err) {
    throw new UplinkError('IO', `${what} could not be dead-lettered: ${(err as Error).message}`, { cause: err });
  }
  host.ledger.lettered(lane, seq);
  if (!quiet) host.reportError(new UplinkError('REFUSED', `${what} moved to the dead-letter lane: ${reason}`));
}
