import type { StoreFile } from './fs.js';
import type { Lane, LaneHost } from './lane.js';
import type { LaneCursor } from './checkpoint.js';
import { applySeal, emptySegment, parseSegmentName, readSeal, scanSegment, type SegmentInfo } from './segment.js';

/**
 * Rebuilds a lane from its directory. Sealed segments are learnt from their last 72 bytes; only the
 * last segment (at most segmentBytes) and any segment that lost its seal are read in full, so open time
 * depends on the segment size, not on the backlog. A torn tail on the last segment is cut off (unless
 * read-only) before anything is appended after it.
 */
export async function recoverLane(lane: Lane, host: LaneHost, cursor: LaneCursor | undefined): Promise<void> {
  const { fs, opts } = host;
  const found = (await fs.readdir(lane.dir))
    .map((name) => ({ name, parsed: parseSegmentName(name) }))
    .filter((e): e is { name: string; parsed: { no: number; baseSeq: number } } => e.parsed !== null)
    .sort((a, b) => a.parsed.no - b.parsed.no);
  for (let i = 0; i < found.length; i++) {
    const { name, parsed } = found[i]!;
    const seg = emptySegment(parsed.no, parsed.baseSeq, `${lane.dir}/${name}`);
    const isLast = i === found.length - 1;
    const writable = isLast && !opts.readOnly;
    const dsync = writable && opts.syncMode === 'always';
    const file = await fs.open(seg.path, writable ? 'readwrite' : 'read', { dsync });
    let keepOpen = false;
    try {
      keepOpen = await recoverSegment(lane, host, seg, file, isLast);
    } finally {
      if (!keepOpen) await file.close();
    }
  }
  let lastSeq = 0;
  for (const seg of lane.segments) if (seg.records > 0) lastSeq = Math.max(lastSeq, seg.lastSeq);
  lane.restore(lastSeq, cursor);
}

/** Returns true when `file` became the lane's active write handle. */
async function recoverSegment(
  lane: Lane,
  host: LaneHost,
  seg: SegmentInfo,
  file: StoreFile,
  isLast: boolean,
): Promise<boolean> {
  const { opts } = host;
  const size = await file.size();
  host.diskBytesChanged(size);
  seg.bytes = size;
  if (!isLast) {
    const seal = await readSeal(file, size, opts.recordBytesMax);
    if (seal) {
      seg.durableBytes = size;
      applySeal(seg, seal);
      lane.adoptSegment(seg, null);
      return false;
    }
  }
  const scan = await scanSegment(file, size, seg, opts.recordBytesMax);
  for (const d of scan.damage) {
    host.reportDamage({ lane: lane.name, segment: seg.name, fromByte: d.fromByte, toByte: d.toByte, kind: 'corrupt' });
  }
  seg.durableBytes = scan.validEnd;
  if (isLast && scan.validEnd < size) {
    host.reportDamage({ lane: lane.name, segment: seg.name, fromByte: scan.validEnd, toByte: size, kind: 'torn-tail' });
    if (!opts.readOnly) {
      // Not synced here: the next append's fdatasync makes the new length durable with its data, and a
      // truncation a power cut undoes is found and repeated by the next open (the simulator checks this).
      await file.truncate(scan.validEnd);
      host.diskBytesChanged(scan.validEnd - size);
      seg.bytes = scan.validEnd;
    }
  }
  seg.sealed = scan.sealed || !isLast || opts.readOnly;
  lane.adoptSegment(seg, seg.sealed ? null : file);
  return !seg.sealed;
}
