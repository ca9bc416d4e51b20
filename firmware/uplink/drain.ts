import assert from 'node:assert/strict';
import { Cursor, nextTurn, takeTurn, type Inflight, type PumpLane } from './cursor.js';
import type { DrainHost, PumpSession } from './drain-host.js';
import { recordToMessage } from './message.js';
import {
  WINDOW_AFTER_LOSS_MESSAGES,
  WINDOW_AFTER_RECONNECT_MESSAGES,
  nextRecovery,
  recovered,
  type LossRecovery,
} from './recovery.js';
import { UplinkError } from './types.js';

export type { PumpLane } from './cursor.js';
export type { DrainHost, DrainLimits, PumpSession, PumpSessionFactory } from './drain-host.js';

/** A failed read (disk error) is tried again after this long rather than dropping the connection. */
const READ_RETRY_MS = 1_000;

/**
 * One connection's worth of draining. The pump makes one per successful connect and throws it away when the
 * connection dies; everything it needs to resume lives in the store (the acked cursor), nothing here.
 */
export class DrainSession implements PumpSession {
  private readonly cursors: Cursor[];
  private readonly unsubscribes: Array<() => void> = [];
  private inflightCount = 0;
  private ended = false;
  private window: number;
  /** What the next connection inherits (recovery.ts); set when this one ends. */
  recoveryAfter: LossRecovery | null = null;
  /** The run loop and, during a graceful stop, quiesce(): never more than two. */
  private waiters: Array<() => void> = [];
  private woken = false;
  private throttleTimer: NodeJS.Timeout | null = null;
  private paused = false;
  private settle!: { resolve: () => void; reject: (err: Error) => void };
  readonly done: Promise<void>;

  constructor(
    private readonly host: DrainHost,
    lanes: Array<{ lane: PumpLane; weight: number }>,
  ) {
    // The pump takes the lower of inflightMax and the server's Receive Maximum: a NaN, zero or negative
    // window here would stall the drain for ever without a word, so it is a programmer error.
    const { windowMax } = host;
    assert(Number.isSafeInteger(windowMax) && windowMax >= 1, `windowMax must be an integer >= 1, got ${windowMax}`);
    this.cursors = lanes.map(({ lane, weight }) => new Cursor(lane, weight));
    const start = host.recovery === null ? WINDOW_AFTER_RECONNECT_MESSAGES : WINDOW_AFTER_LOSS_MESSAGES;
    this.window = Math.min(start, host.windowMax);
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => {});
    for (const cursor of this.cursors) this.unsubscribes.push(cursor.lane.onDurable(() => this.notify()));
  }

  get windowMax(): number {
    return this.host.windowMax;
  }

  /** The window in force now (slow start on every connection, from one after a loss). */
  get windowNow(): number {
    return this.window;
  }

  get inflight(): number {
    return this.inflightCount;
  }

  /** Send time (monotonic ms) of the oldest unacknowledged publish, for the watchdog; null when none. */
  oldestInflightSentAtMs(): number | null {
    return this.oldestSent()?.entry.sentAtMs ?? null;
  }

  private oldestSent(): { cursor: Cursor; entry: Inflight } | null {
    let oldest: { cursor: Cursor; entry: Inflight } | null = null;
    for (const cursor of this.cursors) {
      const entry = cursor.inflight.find((e) => e.state === 'sent');
      if (entry === undefined) continue;
      if (oldest === null || entry.sentAtMs < oldest.entry.sentAtMs) oldest = { cursor, entry };
    }
    return oldest;
  }

  /** Runs until `end()`; rejects with the cause when the connection fails. */
  async run(): Promise<void> {
    // Plain sleeps, not a race against `done`: every Promise.race leaves a reaction on that long-lived
    // promise, so the heap grew with every loop turn for as long as the connection lasted (measured: +1.2 MB
    // per 100,000 messages drained; without bound on a link that stays up for weeks). end() wakes sleepers.
    while (!this.ended) {
      for (const cursor of this.cursors) this.maybeRead(cursor);
      this.dispatch();
      await this.sleep();
    }
    return this.done;
  }

  /**
   * Ends the session: `cause` for a failure, none for a clean stop. Flushes the acknowledged frontier.
   * `charge` (a reason) counts an attempt against the oldest unacknowledged publish: the broker answers in
   * order, so when a connection dies under a window, that one is what it choked on, if anything was.
   */
  end(cause?: Error, charge?: string): void {
    if (this.ended) return;
    this.ended = true;
    // A refusal being dead-lettered already explains a loss that follows it (mosquitto 2.0.11 may close
    // the connection after a refusal): the innocent message behind it is not charged for it.
    const explained = this.cursors.some((c) => c.inflight.some((e) => e.state === 'dead-lettering'));
    const oldest = charge === undefined || explained ? null : this.oldestSent();
    if (oldest !== null) {
      const { cursor, entry } = oldest;
      this.host.ledger.charge(cursor.lane.name, entry.record.seq, charge!, cursor.lane.ackedSeq());
    }
    this.recoveryAfter = nextRecovery(this.host.recovery, this.cursors, oldest?.cursor ?? null);
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    if (this.throttleTimer !== null) clearTimeout(this.throttleTimer);
    for (const cursor of this.cursors) {
      if (cursor.readRetry !== null) clearTimeout(cursor.readRetry);
      this.flushAck(cursor, true);
    }
    if (cause === undefined) this.settle.resolve();
    else this.settle.reject(cause);
    this.notify();
  }

  /** One message at a time until the suspect range of the last two losses is through (recovery.ts). */
  private strictRecovery(): boolean {
    const recovery = this.host.recovery;
    return recovery !== null && recovery.strict && !recovered(recovery, this.cursors);
  }

  /** Waits until nothing is in flight (or the session ended); used for a graceful stop. */
  async quiesce(): Promise<void> {
    while (!this.ended && this.inflightCount > 0) await this.sleep();
  }

  /** The bandwidth cap changed: a throttle wait computed at the old rate is cut short. */
  rateChanged(): void {
    if (this.throttleTimer !== null) clearTimeout(this.throttleTimer);
    this.throttleTimer = null;
    this.notify();
  }

  /** Stops taking new records from the buffers; in-flight ones still complete. */
  pause(): void {
    this.paused = true;
  }

  private notify(): void {
    if (this.waiters.length === 0) {
      this.woken = true;
      return;
    }
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  private sleep(): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  private maybeRead(cursor: Cursor): void {
    const { readBatchRecordsMax, readBatchBytesMax } = this.host.limits;
    // Read ahead while half a batch is still buffered, so the window never waits on the disk.
    const room = readBatchRecordsMax - cursor.buffer.length;
    if (cursor.reading || cursor.readRetry !== null || room < readBatchRecordsMax / 2) return;
    const durable = cursor.lane.lastDurableSeq();
    if (durable < cursor.nextSeq) return;
    cursor.reading = true;
    const fromSeq = cursor.nextSeq;
    cursor.lane.read(fromSeq, { recordsMax: room, bytesMax: readBatchBytesMax }).then(
      (records) => {
        cursor.reading = false;
        if (this.ended) return;
        try {
          cursor.accept(records, durable);
        } catch (err) {
          // Not thrown on: from a promise callback it would be an unhandled rejection; the pump reports it.
          return this.end(err as Error);
        }
        this.flushAck(cursor, false);
        this.notify();
      },
      (err: unknown) => {
        cursor.reading = false;
        this.host.reportError(err);
        cursor.readRetry = setTimeout(() => {
          cursor.readRetry = null;
          this.notify();
        }, READ_RETRY_MS);
      },
    );
  }

  /** Fills the window: picks lanes by weight, publishes in seq order within each lane. */
  private dispatch(): void {
    while (!this.ended && !this.paused && this.inflightCount < this.window) {
      const cursor = nextTurn(this.cursors);
      if (cursor === null) return;
      const record = cursor.buffer[0]!;
      const spent = this.host.ledger.spent(cursor.lane.name, record.seq);
      const message = recordToMessage(this.host.gatewayId, cursor.lane.name, record);
      const waitMs = spent === null ? this.host.bucket.take(message.body.length) : 0;
      if (waitMs > 0) {
        this.throttleTimer ??= setTimeout(() => ((this.throttleTimer = null), this.notify()), waitMs);
        return;
      }
      takeTurn(this.cursors, cursor);
      cursor.buffer.shift();
      const entry: Inflight = { record, sentAtMs: this.host.clock.monoMs(), state: 'sent' };
      cursor.inflight.push(entry);
      if (spent?.lettered) entry.state = 'done';
      if (spent !== null) {
        if (spent.lettered) this.flushAck(cursor, cursor.shiftDone() > 0);
        else this.deadLetter(cursor, entry, spent.reason, spent.attempts);
        continue;
      }
      this.inflightCount += 1;
      this.host.transport.publish(message).then(
        () => this.onAcked(cursor, entry),
        (err: unknown) => this.onFailed(cursor, entry, err),
      );
    }
  }

  private onAcked(cursor: Cursor, entry: Inflight): void {
    if (this.ended) return;
    entry.state = 'done';
    this.inflightCount -= 1;
    const delivered = cursor.shiftDone();
    if (delivered > 0) {
      this.host.delivered.add(delivered);
      this.flushAck(cursor, false);
    }
    this.window = this.strictRecovery() ? 1 : Math.min(this.host.windowMax, this.window + 1);
    this.notify();
  }

  /**
   * A refusal of this one message leaves the connection up: a permanent one (or one that used up the
   * attempt budget) goes to the dead-letter lane, anything else is tried again on a new connection.
   */
  private onFailed(cursor: Cursor, entry: Inflight, err: unknown): void {
    const error = err instanceof Error ? err : new UplinkError('DISCONNECTED', String(err));
    const refusal = error instanceof UplinkError ? error.refusal : null;
    if (this.ended) return;
    if (refusal === null) return this.end(error, 'connection-lost');
    this.inflightCount -= 1;
    const lane = cursor.lane.name;
    const seq = entry.record.seq;
    const exhausted = this.host.ledger.charge(lane, seq, refusal.reason, cursor.lane.ackedSeq(), refusal.permanent);
    this.host.reportError(error);
    if (exhausted) this.deadLetter(cursor, entry, refusal.reason, this.host.ledger.attempts(lane, seq));
    else this.end(error);
  }

  /** The original is acknowledged only once its copy is durable; a failed copy is tried on the next connection. */
  private deadLetter(cursor: Cursor, entry: Inflight, reason: string, attempts: number): void {
    entry.state = 'dead-lettering';
    const box = this.host.deadLetters;
    const what = `${this.host.gatewayId}:${cursor.lane.name}:${entry.record.seq}`;
    if (box === null) {
      const why = `${what} cannot be delivered (${reason}) and there is no dead-letter lane`;
      return this.end(new UplinkError('REFUSED', why));
    }
    box.put(cursor.lane.name, entry.record, reason, attempts).then(
      () => {
        this.host.ledger.lettered(cursor.lane.name, entry.record.seq);
        const moved = `${what} moved to the dead-letter lane after ${attempts} attempts: ${reason}`;
        this.host.reportError(new UplinkError('REFUSED', moved));
        if (this.ended) return;
        entry.state = 'done';
        cursor.shiftDone();
        this.flushAck(cursor, false);
        this.notify();
      },
      (err: unknown) => {
        const why = `${what} could not be dead-lettered: ${(err as Error).message}`;
        this.end(new UplinkError('IO', why, { cause: err }));
      },
    );
  }

  /** Acks the store in batches: each ack may dirty a checkpoint, so one per message would be waste. */
  private flushAck(cursor: Cursor, force: boolean): void {
    const frontier = cursor.frontier();
    assert(frontier >= cursor.lastAckSent, `lane "${cursor.lane.name}": ack frontier ${frontier} went back`);
    if (frontier === cursor.lastAckSent) return;
    const idle = cursor.inflight.length === 0;
    if (!force && !idle && frontier - cursor.lastAckSent < this.host.limits.ackBatchRecords) return;
    cursor.lane.ack(frontier);
    cursor.lastAckSent = frontier;
  }
}
