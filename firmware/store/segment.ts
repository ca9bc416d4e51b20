import type { StoreFile } from './fs.js';
import {
  FLAG_SEAL,
  HEADER_BYTES,
  RECORD_MAGIC,
  SEAL_RECORD_BYTES,
  decodeSealBody,
  parseRecord,
  type RecordHeader,
  type SealSummary,
} from './record.js';

/** Segment files are `<segment number>-<first seq>.seg`; the number orders segments across lanes. */
const SEGMENT_NAME = /^(\d{10})-(\d{16})\.seg$/;
/** A sparse index entry every this many bytes keeps seeks short without an index per record. */
export const INDEX_STRIDE_BYTES = 256 * 1024;
/** Bytes read per call while scanning or reading; a record larger than this widens the read. */
export const READ_CHUNK_BYTES = 1024 * 1024;

export function segmentName(no: number, baseSeq: number): string {
  return `${String(no).padStart(10, '0')}-${String(baseSeq).padStart(16, '0')}.seg`;
}

export function parseSegmentName(name: string): { no: number; baseSeq: number } | null {
  const m = SEGMENT_NAME.exec(name);
  return m ? { no: Number(m[1]), baseSeq: Number(m[2]) } : null;
}

/** What the log knows about one segment file, without holding its records in memory. */
export interface SegmentInfo {
  no: number;
  baseSeq: number;
  name: string;
  path: string;
  /** Bytes written to the file (the next append offset). */
  bytes: number;
  /** Bytes known to be on stable storage; readers never look past this in `always` mode. */
  durableBytes: number;
  records: number;
  firstSeq: number;
  lastSeq: number;
  /** Largest expiry among the records (store ms); meaningless when `neverExpires`. */
  maxExpiresAtStoreMs: number;
  neverExpires: boolean;
  firstEnqueuedAtMs: number;
  sealed: boolean;
  /** (seq, offset) pairs, ascending, at most one per INDEX_STRIDE_BYTES. */
  index: Array<[number, number]>;
  deleted: boolean;
}

export function emptySegment(no: number, baseSeq: number, path: string): SegmentInfo {
  return {
    no,
    baseSeq,
    name: segmentName(no, baseSeq),
    path,
    bytes: 0,
    durableBytes: 0,
    records: 0,
    firstSeq: 0,
    lastSeq: 0,
    maxExpiresAtStoreMs: 0,
    neverExpires: false,
    firstEnqueuedAtMs: 0,
    sealed: false,
    index: [],
    deleted: false,
  };
}

/** Folds one record into the segment's summary. */
export function noteRecord(seg: SegmentInfo, h: RecordHeader, offset: number): void {
  if (seg.records === 0) {
    seg.firstSeq = h.seq;
    seg.firstEnqueuedAtMs = h.enqueuedAtMs;
  }
  seg.records++;
  seg.lastSeq = h.seq;
  if (h.expiresAtStoreMs === 0) seg.neverExpires = true;
  else if (h.expiresAtStoreMs > seg.maxExpiresAtStoreMs) seg.maxExpiresAtStoreMs = h.expiresAtStoreMs;
  const last = seg.index[seg.index.length - 1];
  if (!last || offset - last[1] >= INDEX_STRIDE_BYTES) seg.index.push([h.seq, offset]);
}

export function applySeal(seg: SegmentInfo, s: SealSummary): void {
  seg.records = s.records;
  seg.firstSeq = s.firstSeq;
  seg.lastSeq = s.lastSeq;
  seg.neverExpires = s.maxExpiresAtStoreMs === 0 && s.records > 0;
  seg.maxExpiresAtStoreMs = s.maxExpiresAtStoreMs;
  seg.firstEnqueuedAtMs = s.firstEnqueuedAtMs;
  seg.sealed = true;
}

/** Reads only the last bytes of a file: a valid seal record there describes the whole segment. */
export async function readSeal(file: StoreFile, size: number, recordBytesMax: number): Promise<SealSummary | null> {
  if (size < SEAL_RECORD_BYTES) return null;
  const buf = Buffer.alloc(SEAL_RECORD_BYTES);
  const got = await file.read(buf, size - SEAL_RECORD_BYTES);
  if (got !== SEAL_RECORD_BYTES) return null;
  const res = parseRecord(buf, 0, SEAL_RECORD_BYTES, recordBytesMax);
  if (res.kind !== 'ok' || (res.header.flags & FLAG_SEAL) === 0) return null;
  if (res.header.totalBytes !== SEAL_RECORD_BYTES) return null;
  return decodeSealBody(buf, HEADER_BYTES);
}

export interface ScanDamage {
  fromByte: number;
  toByte: number;
}

export interface ScanResult {
  /** End of the last good record (or seal); everything after it is a torn tail. */
  validEnd: number;
  sealed: boolean;
  /** Regions in the middle that failed their CRC and were skipped. */
  damage: ScanDamage[];
}

/**
 * Reads a segment start to end, folding every good record into `seg`. A bad record is skipped by
 * searching for the next header whose CRC holds and whose seq continues the sequence; if none
 * follows, the bad bytes are a torn tail and `validEnd` marks where good data stops.
 */
export async function scanSegment(
  file: StoreFile,
  size: number,
  seg: SegmentInfo,
  recordBytesMax: number,
): Promise<ScanResult> {
  const result: ScanResult = { validEnd: 0, sealed: false, damage: [] };
  let offset = 0;
  let prevSeq = 0;
  // One buffer for the whole scan: open reads a 16 MiB tail, and a fresh buffer per window would leave
  // megabytes of garbage (and RSS) behind. Nothing read here outlives the scan.
  const scratch = Buffer.allocUnsafe(Math.min(size, READ_CHUNK_BYTES + recordBytesMax));
  while (offset < size) {
    const window = await readWindow(file, offset, size, recordBytesMax, scratch);
    let pos = 0;
    let advanced = false;
    const atEof = offset + window.length >= size;
    while (pos < window.length) {
      const res = parseRecord(window, pos, window.length, recordBytesMax);
      // Short before end of file: the window ends mid-record, read on. At end of file it is either a
      // torn tail or a damaged length field; the search below tells them apart.
      if (res.kind === 'short' && !atEof) break;
      if (res.kind === 'ok' && res.header.seq > prevSeq) {
        const h = res.header;
        if (h.flags & FLAG_SEAL) {
          applySeal(seg, decodeSealBody(window, pos + HEADER_BYTES));
          result.sealed = true;
        } else {
          noteRecord(seg, h, offset + pos);
        }
        prevSeq = h.seq;
        pos += h.totalBytes;
        result.validEnd = offset + pos;
        advanced = true;
        continue;
      }
      const next = await findNextRecord(file, offset + pos + 1, size, prevSeq, recordBytesMax, scratch);
      if (next < 0) return result;
      result.damage.push({ fromByte: offset + pos, toByte: next });
      offset = next;
      pos = -1;
      break;
    }
    if (pos === -1) continue;
    if (pos >= window.length && atEof) return result;
    if (!advanced && pos === 0) return result;
    offset += pos;
  }
  return result;
}

async function readWindow(
  file: StoreFile,
  offset: number,
  size: number,
  recordBytesMax: number,
  scratch?: Buffer,
): Promise<Buffer> {
  const want = Math.min(size - offset, READ_CHUNK_BYTES + recordBytesMax);
  const buf = scratch && scratch.length >= want ? scratch.subarray(0, want) : Buffer.allocUnsafe(want);
  const got = await file.read(buf, offset);
  return got === want ? buf : buf.subarray(0, got);
}

/**
 * Byte-by-byte search for the next plausible record start after damage: magic byte, sane lengths, a
 * seq above the last good one, and a matching CRC. Returns its offset, or -1 if nothing good follows.
 */
export async function findNextRecord(
  file: StoreFile,
  from: number,
  size: number,
  prevSeq: number,
  recordBytesMax: number,
  scratch?: Buffer,
): Promise<number> {
  let offset = from;
  while (offset + HEADER_BYTES <= size) {
    const window = await readWindow(file, offset, size, recordBytesMax, scratch);
    const scanEnd = Math.min(window.length, READ_CHUNK_BYTES);
    for (let pos = 0; pos < scanEnd; pos++) {
      if (window[pos + 4] !== RECORD_MAGIC) continue;
      const res = parseRecord(window, pos, window.length, recordBytesMax);
      if (res.kind === 'ok' && res.header.seq > prevSeq) return offset + pos;
    }
    if (window.length <= READ_CHUNK_BYTES) return -1;
    offset += scanEnd;
  }
  return -1;
}
