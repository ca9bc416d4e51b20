import type { Entry } from './lane-cursor.js';

/**
 * The edge drain's records per identity (session.ts): those waiting for its connection, in seq order per
 * lane, and how many are in flight on it, with the session's overall in-flight count. Iterating yields the
 * identities in turn order; `rotate` sends a served one to the back.
 */
export class IdentityQueues {
  private readonly queues = new Map<string, Entry[]>();
  private readonly sent = new Map<string, number>();
  private inflightCount = 0;

  [Symbol.iterator](): IterableIterator<[string, Entry[]]> {
    return this.queues[Symbol.iterator]();
  }

  /** Publishes awaiting their PUBACK, all identities. */
  get inflight(): number {
    return this.inflightCount;
  }

  get(identity: string): Entry[] | undefined {
    return this.queues.get(identity);
  }

  /** Replaces the identity's queue (what is left of it once some records were parked). */
  set(identity: string, queue: Entry[]): void {
    this.queues.set(identity, queue);
  }

  delete(identity: string): void {
    this.queues.delete(identity);
  }

  /** A served identity goes to the back: the next turn starts with those that waited. */
  rotate(identity: string, queue: Entry[]): void {
    this.queues.delete(identity);
    this.queues.set(identity, queue);
  }

  /** A record read: at the back of its identity's queue. */
  push(entry: Entry): void {
    let queue = this.queues.get(entry.identity);
    if (queue === undefined) this.queues.set(entry.identity, (queue = []));
    queue.push(entry);
  }

  /** A record whose publish failed: back in its queue, in seq order among those of its lane. */
  requeue(entry: Entry): void {
    let queue = this.queues.get(entry.identity);
    if (queue === undefined) this.queues.set(entry.identity, (queue = []));
    const at = queue.findIndex((other) => other.cursor === entry.cursor && other.record.seq > entry.record.seq);
    queue.splice(at < 0 ? queue.length : at, 0, entry);
  }

  /** The identity's publishes awaiting their PUBACK. */
  sentOf(identity: string): number {
    return this.sent.get(identity) ?? 0;
  }

  markSent(identity: string): void {
    this.inflightCount += 1;
    this.sent.set(identity, this.sentOf(identity) + 1);
  }

  /** A publish answered (or failed): it leaves both counts. */
  unsend(identity: string): void {
    this.inflightCount -= 1;
    const left = (this.sent.get(identity) ?? 1) - 1;
    if (left > 0) this.sent.set(identity, left);
    else this.sent.delete(identity);
  }

  /** Records queued or in flight for the identity. */
  busy(identity: string): boolean {
    return (this.queues.get(identity)?.length ?? 0) > 0 || this.sentOf(identity) > 0;
  }
}
