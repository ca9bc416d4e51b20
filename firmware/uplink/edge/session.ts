import type { StoredRecord } from '../../store/types.js';
import type { PumpLane } from '../cursor.js';
import type { DrainHost, PumpSession } from '../drain.js';
import { recordToMessage } from '../message.js';
import { UplinkError } from '../types.js';
import { HeldLane, originOf } from './held.js';
import { HeldReader } from './held-reader.js';
import { EDGE_READ_AHEAD_RECORDS_MAX, IDENTITY_REFUSED, LaneCursor, deadLetterEntry } from './lane-cursor.js';
import type { Entry } from './lane-cursor.js';
import { IDENTITY_INFLIGHT_MAX, IDENTITY_SEND_BATCH_MESSAGES, PARK_PENDING_MS } from './limits.js';
import { oldestGatewaySentAtMs, overdueError, overdueIdentities } from './overdue.js';
import type { ConnectionPool } from './pool.js';
import { IdentityQueues } from './queues.js';
import { ReturningLetters } from './returning.js';
import type { DeadLetterResend } from './resend.js';

export interface EdgeContext {
  pool: ConnectionPool;
  held: HeldLane;
  /** Dead letters of refused identities, sent again when the identity is back; null without a dead-letter lane. */
  resend: DeadLetterResend | null;
  identityOf(record: StoredRecord): string;
  publishTimeoutMs: number;
  /** Records read ahead per lane; EDGE_READ_AHEAD_RECORDS_MAX unless a test makes it small. */
  readAheadRecordsMax?: number;
}

/**
 * One gateway connection's worth of edge-mode draining: the upstream lane(s) and the holding lane read in
 * stored order, each record published on its identity's connection (the gateway's own on the gateway's), order
 * per identity kept, a window per connection and overall, and the lanes acknowledged contiguously as records
 * are delivered, parked (held.ts) or dead-lettered, so no identity holds another back.
 */
export class EdgeDrainSession implements PumpSession {
  private readonly cursors: LaneCursor[];
  private readonly heldReader: HeldReader;
  private readonly queues = new IdentityQueues();
  private readonly unsubscribes: Array<() => void> = [];
  /** Dead letters copied back to the holding lane: the identity's records wait in its queue meanwhile. */
  private readonly letters: ReturningLetters;
  private ended = false;
  private paused = false;
  private waiter: (() => void) | null = null;
  private quiescer: (() => void) | null = null;
  private woken = false;
  private throttleTimer: NodeJS.Timeout | null = null;
  private readonly watchdog: NodeJS.Timeout;
  private settle!: { resolve: () => void; reject: (err: Error) => void };
  readonly done: Promise<void>;
  readonly recoveryAfter = null;

  constructor(
    private readonly host: DrainHost,
    lanes: Array<{ lane: PumpLane; weight: number }>,
    private readonly edge: EdgeContext,
  ) {
    const readAheadMax = edge.readAheadRecordsMax ?? EDGE_READ_AHEAD_RECORDS_MAX;
    const state = (identity: string) => (identity === host.gatewayId ? 'up' : edge.pool.state(identity));
    const want = (identity: string) => edge.pool.want(identity);
    const [monoMs, identityOf] = [() => host.clock.monoMs(), edge.identityOf];
    this.heldReader = new HeldReader(edge.held.lane, readAheadMax, this.queues, { state, want, monoMs, identityOf });
    this.letters = new ReturningLetters(edge.resend, edge.held, {
      gatewayId: host.gatewayId,
      limits: host.limits,
      state,
      want,
      sentOf: (identity) => this.queues.sentOf(identity),
      resent: (identity) => this.lettersResent(identity),
      failed: (identity, err) => this.end(ioError(`cannot re-send the dead letters of "${identity}"`, err)),
    });
    const upstream = lanes.map(({ lane }) => new LaneCursor(lane, false, readAheadMax));
    this.cursors = [...upstream, this.heldReader.cursor];
    this.done = new Promise((resolve, reject) => (this.settle = { resolve, reject }));
    this.done.catch(() => {});
    for (const cursor of this.cursors) this.unsubscribes.push(cursor.lane.onDurable(() => this.notify()));
    this.watchdog = setInterval(() => this.checkTimeouts(), Math.max(50, edge.publishTimeoutMs / 4));
  }

  get windowMax(): number {
    return this.host.windowMax;
  }

  get inflight(): number {
    return this.queues.inflight;
  }

  /** The gateway's own connection is the pump's to watch; children's publishes are timed out here. */
  oldestInflightSentAtMs(): number | null {
    return oldestGatewaySentAtMs(this.cursors, this.host.gatewayId);
  }

  async run(): Promise<void> {
    await this.edge.held.rescan(this.host.limits.readBatchRecordsMax, this.host.limits.readBatchBytesMax);
    await this.edge.resend?.scan(this.host.limits);
    while (!this.ended) {
      for (const cursor of this.cursors) this.maybeRead(cursor);
      this.dispatch();
      await this.sleep();
    }
    return this.done;
  }

  end(cause?: Error): void {
    if (this.ended) return;
    this.ended = true;
    for (const unsubscribe of this.unsubscribes) unsubscribe();
    clearInterval(this.watchdog);
    if (this.throttleTimer !== null) clearTimeout(this.throttleTimer);
    for (const cursor of this.cursors) {
      if (cursor.readRetry !== null) clearTimeout(cursor.readRetry);
      cursor.flushAck(this.host.limits.ackBatchRecords, true);
    }
    if (cause === undefined) this.settle.resolve();
    else this.settle.reject(cause);
    this.notify();
  }

  async quiesce(): Promise<void> {
    while (!this.ended && this.queues.inflight > 0) await new Promise<void>((resolve) => (this.quiescer = resolve));
  }

  rateChanged(): void {
    if (this.throttleTimer !== null) clearTimeout(this.throttleTimer);
    this.throttleTimer = null;
    this.notify();
  }

  pause(): void {
    this.paused = true;
  }

  /** True while the session holds records for the identity (the pool keeps its connection then). */
  busy(identity: string): boolean {
    return this.queues.busy(identity) || this.heldReader.deferred(identity);
  }

  notify(): void {
    this.quiescer?.();
    this.quiescer = null;
    const waiter = this.waiter;
    this.waiter = null;
    if (waiter === null) this.woken = true;
    else waiter();
  }

  private sleep(): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.waiter = resolve));
  }

  /** The holding lane is read by its reader, which defers the identities that would block it (held-reader.ts). */
  private maybeRead(cursor: LaneCursor): void {
    const listener = {
      ended: () => this.ended,
      take: (record: StoredRecord) => this.take(cursor, record),
      taken: () => (cursor.flushAck(this.host.limits.ackBatchRecords, false), this.notify()),
      failed: (err: unknown) => this.host.reportError(err),
      retry: () => this.notify(),
    };
    if (cursor.holding) this.heldReader.read(this.host.limits, listener);
    else cursor.readAhead(this.host.limits, listener);
  }

  /** A record read: queued on its identity, or straight to the holding lane while the identity is parked. */
  private take(cursor: LaneCursor, record: StoredRecord): void {
    const identity = this.edge.identityOf(record);
    const queuedAtMs = this.host.clock.monoMs();
    const entry: Entry = { record, identity, cursor, state: 'queued', queuedAtMs, sentAtMs: 0 };
    cursor.add(entry);
    if (!cursor.holding && this.edge.held.parked(identity) && !this.letters.resending(identity))
      return this.park(entry);
    this.queues.push(entry);
    if (identity !== this.host.gatewayId) this.edge.pool.want(identity);
  }

  /** Fills the windows: each identity with queued records, in turn, as far as its connection allows. */
  private dispatch(): void {
    if (this.ended) return;
    for (const cursor of this.cursors) if (!cursor.holding) this.parkHead(cursor);
    this.letters.check();
    for (const [identity, queue] of this.queues) {
      if (queue.length === 0) {
        this.queues.delete(identity);
        continue;
      }
      if (this.letters.resending(identity)) continue;
      const state = identity === this.host.gatewayId ? 'up' : this.edge.pool.state(identity);
      if (state === 'refused') this.deadLetterAll(identity, queue);
      else if (state === 'backoff') this.parkQueued(identity, queue);
      else if (state === 'closed') this.edge.pool.want(identity);
      else if (state === 'up') {
        const before = this.queues.inflight;
        const more = this.fill(identity, queue);
        if (this.queues.inflight > before) this.queues.rotate(identity, queue);
        if (!more) return;
      }
    }
  }

  /**
   * Sends the identity's queued records while its window, the overall one and the bandwidth cap allow, a
   * batch at a time (IDENTITY_SEND_BATCH_MESSAGES). False when the overall window has no room for a batch.
   */
  private fill(identity: string, queue: Entry[]): boolean {
    const batch = Math.min(queue.length, IDENTITY_SEND_BATCH_MESSAGES, this.host.windowMax);
    if (this.host.windowMax - this.queues.inflight < batch) return false;
    if (IDENTITY_INFLIGHT_MAX - this.queues.sentOf(identity) < batch) return true;
    while (queue.length > 0 && !this.paused && this.queues.sentOf(identity) < IDENTITY_INFLIGHT_MAX) {
      if (this.queues.inflight >= this.host.windowMax) return false;
      const entry = queue[0]!;
      const origin = originOf(entry.cursor.lane.name, entry.record);
      const message = recordToMessage(this.host.gatewayId, origin.lane, { ...entry.record, seq: origin.seq });
      const waitMs = this.host.bucket.take(message.body.length);
      if (waitMs > 0) {
        this.throttleTimer ??= setTimeout(() => ((this.throttleTimer = null), this.notify()), waitMs);
        return false;
      }
      queue.shift();
      entry.state = 'sent';
      entry.sentAtMs = this.host.clock.monoMs();
      this.queues.markSent(identity);
      const publish =
        identity === this.host.gatewayId
          ? this.host.transport.publish(message)
          : this.edge.pool.publish(identity, message);
      publish.then(
        () => this.onAcked(entry),
        (err: unknown) => this.onFailed(entry, err),
      );
    }
    return true;
  }

  private onAcked(entry: Entry): void {
    if (this.ended) return;
    this.queues.unsend(entry.identity);
    this.host.delivered.add(1);
    this.finish(entry);
    if (!this.busy(entry.identity)) this.edge.pool.released(entry.identity);
  }

  /**
   * A refusal of this one message is charged to it (dead-lettered once permanent or out of attempts); any
   * other failure is the identity's connection: the record goes back to the front of its queue, in seq
   * order, and the pool reconnects that identity with its own backoff. The gateway's own connection failing
   * ends the session, as in device mode.
   */
  private onFailed(entry: Entry, err: unknown): void {
    if (this.ended) return;
    const error = err instanceof Error ? err : new UplinkError('DISCONNECTED', String(err));
    const refusal = error instanceof UplinkError ? error.refusal : null;
    const gateway = entry.identity === this.host.gatewayId;
    if (refusal === null && gateway) return this.end(error);
    this.queues.unsend(entry.identity);
    if (refusal !== null) {
      const { lane, seq } = originOf(entry.cursor.lane.name, entry.record);
      const ackedSeq = entry.cursor.lane.ackedSeq();
      this.host.reportError(error);
      if (this.host.ledger.charge(lane, seq, refusal.reason, ackedSeq, refusal.permanent)) {
        return this.deadLetter(entry, refusal.reason, this.host.ledger.attempts(lane, seq));
      }
    }
    if (gateway) return this.end(error);
    entry.state = 'queued';
    this.queues.requeue(entry);
    this.edge.pool.fail(entry.identity, error);
    this.notify();
  }

  /** An identity in backoff with nothing in flight has its upstream records parked (held.ts). */
  private parkQueued(identity: string, queue: Entry[]): void {
    if (this.queues.sentOf(identity) > 0) return;
    const keep = queue.filter((entry) => entry.cursor.holding);
    for (const entry of queue) if (!entry.cursor.holding) this.park(entry);
    this.queues.set(identity, keep);
  }

  /** A full read-ahead whose oldest record waits on a connection that has not opened for too long. */
  private parkHead(cursor: LaneCursor): void {
    if (cursor.entries.length < cursor.readAheadMax) return;
    const head = cursor.entries.find((entry) => entry.state !== 'done');
    if (head === undefined || head.state !== 'queued' || head.identity === this.host.gatewayId) return;
    // Its letters are being copied to the holding lane: its newer records may only follow them.
    if (this.letters.resending(head.identity)) return;
    if (this.host.clock.monoMs() - head.queuedAtMs < PARK_PENDING_MS) return;
    const queue = this.queues.get(head.identity);
    if (queue !== undefined && this.queues.sentOf(head.identity) === 0) this.parkQueued(head.identity, queue);
  }

  private park(entry: Entry): void {
    entry.state = 'moving';
    this.edge.held.move(entry.cursor.lane.name, entry.record, entry.identity).then(
      () => !this.ended && this.finish(entry),
      (err: unknown) => this.end(ioError(`cannot park a record of "${entry.identity}"`, err)),
    );
  }

  /** The letters went to the holding lane first; the records queued meanwhile are parked behind them. */
  private lettersResent(identity: string): void {
    if (this.ended) return;
    const queue = this.queues.get(identity);
    if (queue !== undefined && this.edge.held.parked(identity)) this.parkQueued(identity, queue);
    this.notify();
  }

  private deadLetterAll(identity: string, queue: Entry[]): void {
    for (const entry of queue.splice(0)) this.deadLetter(entry, IDENTITY_REFUSED, 0);
    this.queues.delete(identity);
  }

  /** The original is done only once its copy in the dead-letter lane is durable. */
  private deadLetter(entry: Entry, reason: string, attempts: number): void {
    entry.state = 'moving';
    const quiet = reason === IDENTITY_REFUSED;
    deadLetterEntry(this.host, entry, reason, attempts, quiet).then(
      () => {
        if (quiet) this.edge.resend?.noted(entry.identity);
        if (!this.ended) this.finish(entry);
      },
      (err: unknown) => this.end(err as Error),
    );
  }

  /** Delivered, parked or dead-lettered: a holding-lane copy is settled, and the lane's frontier may move. */
  private finish(entry: Entry): void {
    entry.state = 'done';
    if (entry.cursor.holding) this.edge.held.settled(entry.identity);
    entry.cursor.shiftDone();
    entry.cursor.flushAck(this.host.limits.ackBatchRecords, false);
    this.notify();
  }

  /** A child's publish unanswered past publishTimeoutMs: that identity's connection is replaced. */
  private checkTimeouts(): void {
    // A refused identity with letters waiting is due for its recheck at some point: the drain looks again.
    if ((this.edge.resend?.waitingCount ?? 0) > 0) this.notify();
    const ms = this.edge.publishTimeoutMs;
    const overdue = overdueIdentities(this.cursors, this.host.gatewayId, this.host.clock.monoMs(), ms);
    for (const identity of overdue) this.edge.pool.fail(identity, overdueError(identity, ms));
  }
}

function ioError(what: string, cause: unknown): UplinkError {
  return new UplinkError('IO', `${what}: ${(cause as Error).message}`, { cause });
}
