import assert from 'node:assert/strict';
import type { AppendInput, StoredRecord } from '../store/types.js';

/** The store's lane, as the pump sees it (the same methods as firmware/store's `Lane`, no store internals). */
export interface PumpLane {
  readonly name: string;
  append(input: AppendInput): Promise<number>;
  read(fromSeq: number, limits?: { recordsMax?: number; bytesMax?: number }): Promise<StoredRecord[]>;
  ack(seq: number): void;
  ackedSeq(): number;
  lastDurableSeq(): number;
  onDurable(listener: (lastSeq: number) => void): () => void;
}

/**
 * One record taken from a lane's buffer: `sent` awaits its PUBACK, `dead-lettering` awaits its copy in the
 * dead-letter lane, `done` lets the frontier pass it.
 */
export interface Inflight {
  record: StoredRecord;
  sentAtMs: number;
  state: 'sent' | 'dead-lettering' | 'done';
}

/** Per-lane state of one connection's drain. */
export class Cursor {
  /** Smooth weighted round robin credit (nginx's algorithm): every ready lane gains its weight per pick. */
  credit = 0;
  nextSeq: number;
  buffer: StoredRecord[] = [];
  inflight: Inflight[] = [];
  lastAckSent: number;
  reading = false;
  readRetry: NodeJS.Timeout | null = null;

  constructor(
    readonly lane: PumpLane,
    readonly weight: number,
  ) {
    // Re-read from the acknowledged cursor: whatever was in flight when the last connection died goes again.
    this.lastAckSent = lane.ackedSeq();
    this.nextSeq = this.lastAckSent + 1;
  }

  /**
   * Takes a read's answer, asked from nextSeq while the lane's last durable seq was `durableAtAsk`. A lane
   * that answers out of order, with a seq already taken or one it has not made durable breaks the contract
   * every ack relies on (lane-contract.ts): that is a programmer error, asserted, not papered over.
   *
   * The answer may rightly reach past `durableAtAsk`: reads queue behind one another, and a group commit
   * that lands while one waits makes more records durable before it runs. The bound is the lane's durable
   * seq now. Holding it to the seq at the ask made every such overlap an assertion, and on a busy gateway the
   * uplink reconnected, sending its in-flight window again as duplicates.
   */
  accept(records: readonly StoredRecord[], durableAtAsk: number): void {
    let previous = this.nextSeq - 1;
    for (const { seq } of records) {
      assert(seq > previous, `lane "${this.lane.name}": read returned seq ${seq} after ${previous} (seqs in order)`);
      previous = seq;
    }
    const durable = this.lane.lastDurableSeq();
    assert(previous <= durable, `lane "${this.lane.name}": read returned seq ${previous} past durable ${durable}`);
    const last = records.at(-1);
    // An empty answer means every record durable at the ask, from nextSeq on, had expired: step past them.
    // Not past the durable seq now: records made durable after the read had looked were never seen.
    if (last === undefined) this.nextSeq = Math.max(this.nextSeq, durableAtAsk + 1);
    else {
      this.buffer.push(...records);
      this.nextSeq = last.seq + 1;
    }
  }

  /** Highest seq below which everything was acknowledged by the broker (or skipped as expired). */
  frontier(): number {
    if (this.inflight.length > 0) return this.inflight[0]!.record.seq - 1;
    if (this.buffer.length > 0) return this.buffer[0]!.seq - 1;
    return this.nextSeq - 1;
  }

  /** Drops the finished entries at the head; returns how many left. */
  shiftDone(): number {
    let count = 0;
    while (this.inflight.length > 0 && this.inflight[0]!.state === 'done') {
      this.inflight.shift();
      count += 1;
    }
    return count;
  }
}

/**
 * The lane whose turn it is, without taking the turn: the caller commits it with `takeTurn` only once the
 * message may really go (the bandwidth cap allows it). Moving credits for a pick that then waits on the cap
 * gave the turn away: a lane of weight 1 in 3 got under 1% of the sends instead of a third.
 */
export function nextTurn(cursors: Cursor[]): Cursor | null {
  let best: Cursor | null = null;
  for (const cursor of cursors) {
    if (cursor.buffer.length === 0) continue;
    if (best === null || cursor.credit + cursor.weight > best.credit + best.weight) best = cursor;
  }
  return best;
}

export function takeTurn(cursors: Cursor[], chosen: Cursor): void {
  let total = 0;
  for (const cursor of cursors) {
    if (cursor.buffer.length === 0) continue;
    cursor.credit += cursor.weight;
    total += cursor.weight;
  }
  chosen.credit -= total;
}
