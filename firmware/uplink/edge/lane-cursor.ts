import type { StoredRecord } from '../../store/types.js';
import type { PumpLane } from '../cursor.js';
import type { DrainHost, DrainLimits } from '../drain.js';
import { UplinkError } from '../types.js';
import { originOf } from './held.js';

/**
 * Records read ahead of the acknowledged cursor per lane: the room to skip past identities whose connection
 * is still opening (50 children at 20 connects a second take 2.5 s) without stalling the others.
 */
export const EDGE_READ_AHEAD_RECORDS_MAX = 4_096;
/** A failed read (disk error) is tried again after this long rather than ending the session, ms. */
const READ_RETRY_MS = 1_000;

/** One record of a lane in edge mode: queued on its identity, sent, being parked or dead-lettered, done. */
/**
 * The dead-letter reason for the records of an identity IoT Hub refuses (deleted, disabled, not a child). The
 * pool reports the refusal once; each record is counted, not reported, or one child would flood the journal.
 */
export const IDENTITY_REFUSED = 'identity-refused';

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

  constructor(
    readonly lane: PumpLane,
    readonly holding: boolean,
  ) {
    this.lastAckSent = lane.ackedSeq();
    this.nextSeq = this.lastAckSent + 1;
  }

  frontier(): number {
    return this.entries.length > 0 ? this.entries[0]!.record.seq - 1 : this.nextSeq - 1;
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
    const room = EDGE_READ_AHEAD_RECORDS_MAX - this.entries.length;
    const batch = Math.min(limits.readBatchRecordsMax, room);
    if (
      this.reading ||
      this.readRetry !== null ||
      room < Math.min(limits.readBatchRecordsMax, EDGE_READ_AHEAD_RECORDS_MAX / 2)
    )
      return;
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
      (err: unknown) => {
        this.reading = false;
        listener.failed(err);
        this.readRetry = setTimeout(() => ((this.readRetry = null), listener.retry()), READ_RETRY_MS);
      },
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
