import { join } from 'node:path';
import { fromFsError } from './errors.js';
import type { StoreFile } from './fs.js';
import type { LaneHost } from './lane-host.js';
import { FLAG_SEAL, SEAL_RECORD_BYTES, encodeRecord, encodeSealBody } from './record.js';
import { emptySegment, type SegmentInfo } from './segment.js';

// The write side of a lane's segment files: creating the next segment when the lane rolls, sealing the
// one it leaves, and cutting one back after a failed write or sync.

/** Creates the file of a new, empty segment in `dir` whose first record will be `baseSeq`. */
export async function createSegment(
  host: LaneHost,
  dir: string,
  baseSeq: number,
): Promise<{ seg: SegmentInfo; file: StoreFile }> {
  const no = host.nextSegmentNo();
  const seg = emptySegment(no, baseSeq, '');
  seg.path = join(dir, seg.name);
  let file: StoreFile;
  try {
    file = await host.fs.open(seg.path, 'create', { dsync: host.opts.syncMode === 'always' });
  } catch (err) {
    throw fromFsError(err, `create ${seg.path}`);
  }
  return { seg, file };
}

/**
 * Appends a seal record so the next open learns this segment from its last 72 bytes. The seal is not
 * synced on its own: if it is lost, open scans the segment instead, which is slower but as correct.
 * Left out when it does not fit under a reject-new quota (a roll admit did not foresee, after an error).
 * Marks the segment sealed and closes its file either way.
 */
export async function sealSegment(host: LaneHost, seg: SegmentInfo, file: StoreFile): Promise<void> {
  if (seg.records > 0 && seg.bytes === seg.durableBytes && host.sealFits()) {
    const body = encodeSealBody({
      firstSeq: seg.firstSeq,
      lastSeq: seg.lastSeq,
      records: seg.records,
      maxExpiresAtStoreMs: seg.neverExpires ? 0 : seg.maxExpiresAtStoreMs,
      firstEnqueuedAtMs: seg.firstEnqueuedAtMs,
    });
    const buf = Buffer.alloc(SEAL_RECORD_BYTES);
    encodeRecord(buf, 0, {
      seq: seg.lastSeq + 1,
      flags: FLAG_SEAL,
      enqueuedAtMs: 0,
      expiresAtStoreMs: 0,
      props: null,
      body,
    });
    try {
      await file.write(buf, seg.bytes);
      seg.bytes += SEAL_RECORD_BYTES;
      seg.durableBytes = seg.bytes;
      host.diskBytesChanged(SEAL_RECORD_BYTES);
    } catch {
      // Unsealed segments are scanned at open instead; nothing is lost.
    }
  }
  seg.sealed = true;
  await file.close().catch(() => undefined);
}

/** After a failed write or sync: cuts the segment (its file, when open) back to its last durable byte. */
export async function cutBackToDurable(host: LaneHost, seg: SegmentInfo, file: StoreFile | null): Promise<void> {
  // Even a write that failed may have left bytes behind (O_DSYNC reports the sync's failure on the
  // write): cut back to the last durable byte whatever the in-memory size says.
  const lost = seg.bytes - seg.durableBytes;
  try {
    await file?.truncate(seg.durableBytes);
  } catch {
    // The file keeps bytes of unknown state past durableBytes; readers stop at durableBytes and the
    // segment is never appended to again, so they stay invisible until recovery judges them by CRC.
  }
  seg.bytes = seg.durableBytes;
  host.diskBytesChanged(-lost);
}
