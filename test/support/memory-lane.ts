import assert from 'node:assert/strict';
import type { AppendInput, StoredRecord } from '../../firmware/store/types.js';
import type { PumpLane } from '../../firmware/uplink/cursor.js';

/**
 * A test double of the STORE (not of MQTT): one ring-log lane in memory with the contract the pump relies
 * on — seqs increase, reads return durable records from `fromSeq` on in order, expired records are skipped
 * (leaving gaps), `ack` only moves forward, `onDurable` fires after each "group commit". Durability is
 * manual when `autoCommit` is false, so a test can hold records back and release them.
 */
export class MemoryLane implements PumpLane {
  private readonly records: StoredRecord[] = [];
  private acked = 0;
  private durable = 0;
  private nextSeq = 1;
  private readonly listeners = new Set<(lastSeq: number) => void>();
  /** Every ack call, for tests that check batching. */
  readonly ackCalls: number[] = [];
  /** Every read call's fromSeq, for tests that check re-reads after a reconnect. */
  readonly readCalls: number[] = [];
  /** Seqs that reads skip as if their TTL had passed. */
  readonly expired = new Set<number>();

  constructor(
    readonly name: string,
    private readonly opts: { autoCommit?: boolean; wallMs?: () => number } = {},
  ) {}

  async append(input: AppendInput): Promise<number> {
    const seq = this.nextSeq++;
    this.records.push({
      seq,
      enqueuedAtMs: (this.opts.wallMs ?? Date.now)(),
      expiresAtStoreMs: 0,
      properties: { ...input.properties },
      body: input.body,
    });
    if (this.opts.autoCommit ?? true) this.commit();
    return seq;
  }

  /** Makes everything appended so far durable and tells the listeners, as a group commit does. */
  commit(): void {
    if (this.durable === this.nextSeq - 1) return;
    this.durable = this.nextSeq - 1;
    for (const listener of this.listeners) listener(this.durable);
  }

  async read(fromSeq: number, limits: { recordsMax?: number; bytesMax?: number } = {}): Promise<StoredRecord[]> {
    this.readCalls.push(fromSeq);
    const out: StoredRecord[] = [];
    let bytes = 0;
    // Records are in seq order starting at 1, so the index of seq s is s - 1.
    for (let i = Math.max(0, fromSeq - 1); i < this.durable; i += 1) {
      const record = this.records[i]!;
      if (this.expired.has(record.seq)) continue;
      if (out.length >= (limits.recordsMax ?? Infinity)) break;
      if (out.length > 0 && bytes + record.body.length > (limits.bytesMax ?? Infinity)) break;
      bytes += record.body.length;
      out.push(record);
    }
    return out;
  }

  /** As the ring log's lane: forward only, and acking past the last durable record throws (see lane-contract). */
  ack(seq: number): void {
    this.ackCalls.push(seq);
    assert(Number.isSafeInteger(seq), `memory lane "${this.name}": ack(${seq}) needs an integer seq`);
    assert(seq <= this.durable, `memory lane "${this.name}": ack(${seq}) is past the last durable seq ${this.durable}`);
    this.acked = Math.max(this.acked, seq);
  }

  ackedSeq(): number {
    return this.acked;
  }

  lastDurableSeq(): number {
    return this.durable;
  }

  onDurable(listener: (lastSeq: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
