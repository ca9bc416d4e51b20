import type { Batch } from './batch.js';
import { StoreError } from './errors.js';
import type { Lane } from './lane.js';
import type { StoreHost } from './store-host.js';
import type { SegmentInfo } from './segment.js';
import type { LaneStats } from './types.js';

type DropReason = 'quota' | 'retired';

/** Records of `seg` above the lane's acked seq (exact at segment edges, proportional inside). */
function unackedIn(seg: SegmentInfo, acked: number): number {
  if (seg.records === 0 || seg.lastSeq <= acked) return 0;
  if (seg.firstSeq > acked) return seg.records;
  const span = seg.lastSeq - seg.firstSeq + 1;
  return Math.ceil((seg.records * (seg.lastSeq - acked)) / span);
}

/**
 * Whole-segment deletion: retention (all records acknowledged or expired) and the quota. Records are
 * never rewritten in place; space comes back one segment file at a time.
 */
export class Retention {
  constructor(private readonly log: StoreHost) {}

  /** drop-oldest: deletes the oldest segments (any lane) until `needBytes` more fit under the quota. */
  async makeRoom(lane: Lane, needBytes: number, written: Array<{ batch: Batch }>): Promise<void> {
    const busy = new Set<SegmentInfo | null | undefined>(written.map((w) => w.batch.segment));
    busy.add(lane.active);
    if (!(await this.dropOldestUntil(needBytes, busy))) {
      const { dir, quotaBytes } = this.log.opts;
      throw new StoreError('FULL', `ring log ${dir}: no segment left to drop under "quotaBytes" ${quotaBytes}`);
    }
  }

  /** Returns false when no segment is left to drop and `needBytes` still do not fit. */
  private async dropOldestUntil(needBytes: number, busy: Set<SegmentInfo | null | undefined>): Promise<boolean> {
    while (this.log.diskBytes + needBytes > this.log.opts.quotaBytes) {
      let victim: { lane: Lane; seg: SegmentInfo } | null = null;
      for (const l of this.log.lanes.values()) {
        for (const seg of l.segments) {
          if (busy.has(seg)) continue;
          if (!victim || seg.no < victim.seg.no) victim = { lane: l, seg };
          break;
        }
      }
      if (!victim) return false;
      await this.drop(victim.lane, victim.seg, 'quota');
    }
    return true;
  }

  /** Deletes segments whose records are all acknowledged (as of the last durable checkpoint) or expired. */
  async sweep(): Promise<void> {
    const now = this.log.storeNowMs();
    for (const lane of this.log.lanes.values()) {
      for (const seg of [...lane.segments]) {
        if (this.log.isClosing()) return;
        const isActive = seg === lane.active;
        if (isActive && (lane.hasQueued() || seg.bytes !== seg.durableBytes)) continue;
        const acked = seg.records > 0 && seg.lastSeq <= lane.durableAckedSeq;
        const expired = seg.records > 0 && !seg.neverExpires && seg.maxExpiresAtStoreMs <= now;
        const empty = seg.records === 0 && !isActive;
        if (acked || expired || empty) {
          if (expired && !acked) {
            const counted = Math.max(lane.durableAckedSeq, lane.readState.expiredThroughSeq);
            this.log.countExpired(unackedIn(seg, counted));
          }
          // An expiry decided on a store time no checkpoint holds yet would, after a crash, have deleted
          // records the restarted clock still counts as live: make the clock durable first.
          const clockDurable = seg.maxExpiresAtStoreMs <= this.log.durableStoreMs();
          if (expired && !acked && !clockDurable) await this.log.persistCheckpoint();
          await this.drop(lane, seg, 'retired');
        }
      }
    }
    // A quota lowered while running holds from this pass on, not from the next write: nothing is being
    // written under the exclusive section, so any segment may go, active ones included.
    if (this.log.opts.quotaPolicy === 'drop-oldest' && !this.log.isClosing()) await this.dropOldestUntil(0, new Set());
  }

  private async drop(lane: Lane, seg: SegmentInfo, reason: DropReason): Promise<void> {
    // Recovery takes the next seq from the highest seq on disk and the checkpoint: deleting the lane's
    // newest records first (a TTL sweep, or drop-oldest taking this lane's active segment) would let a
    // restart issue their seqs again, and message ids made from them would name different data.
    if (seg.records > 0 && seg.lastSeq >= lane.durableNextSeq) await this.log.persistCheckpoint();
    await lane.dropSegment(seg);
    if (reason === 'quota') this.log.counters.droppedRecords += unackedIn(seg, lane.ackedSeq());
    try {
      await this.log.fs.unlink(seg.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    }
    // No directory fsync: a deletion that a power cut undoes brings back records that are acknowledged
    // (skipped by the cursor), expired (skipped by TTL) or dropped (delivered late, at-least-once).
    this.log.diskBytesChanged(-seg.bytes);
  }

  laneStats(lane: Lane): LaneStats {
    const acked = lane.ackedSeq();
    let pendingRecords = 0;
    let pendingBytes = 0;
    let oldest: SegmentInfo | null = null;
    for (const seg of lane.segments) {
      const unacked = unackedIn(seg, acked);
      if (unacked === 0) continue;
      oldest ??= seg;
      pendingRecords += unacked;
      pendingBytes += Math.round((seg.durableBytes * unacked) / seg.records);
    }
    const oldestAt = oldest ? lane.oldestPendingEnqueuedAtMs(oldest) : 0;
    return {
      lane: lane.name,
      pendingRecords,
      pendingBytes,
      oldestPendingAgeMs: oldest ? Math.max(0, this.log.wallNowMs() - oldestAt) : 0,
      ackedSeq: acked,
      lastSeq: lane.visibleSeq,
      segments: lane.segments.length,
    };
  }
}
