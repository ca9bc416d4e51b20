import assert from 'node:assert/strict';
import type { StoreFile } from './fs.js';
import type { LaneHost } from './lane-host.js';
import { FLAG_SEAL, HEADER_BYTES, decodeProperties, parseRecord } from './record.js';
import { findNextRecord, type SegmentInfo } from './segment.js';
import type { StoredRecord } from './types.js';

/** Default and ceiling for one read call. */
export const READ_RECORDS_DEFAULT = 500;
export const READ_RECORDS_MAX = 10_000;
/** Bytes per read call by default: bounds the memory one read holds on a 512 MiB board. */
export const READ_BYTES_DEFAULT = 1024 * 1024;
/**
 * Bytes per pread while draining. Returned records point into their chunk, so a chunk lives until the
 * caller drops its records; 256 KiB keeps that garbage (and RSS) small at ~900 records per syscall.
 */
const READER_CHUNK_BYTES = 256 * 1024;

/**
 * What a read needs of its lane (the Lane class has it all): its segments, how far readers may go, its read
 * state and age sampling. Narrow, so the reader does not import the lane that imports it.
 */
export interface ReadableLane {
  readonly name: string;
  readonly segments: readonly SegmentInfo[];
  readonly active: SegmentInfo | undefined;
  readonly visibleSeq: number;
  readonly readState: ReadState;
  sampleAge(seq: number, enqueuedAtMs: number): void;
}

/** A lane's reader state before its first read. */
export function newReadState(): ReadState {
  return { file: null, fileSegment: null, position: null, chunk: null, expiredThroughSeq: 0, chain: Promise.resolve() };
}

/** Per-lane reader state: one open segment handle and where the last read stopped. */
export interface ReadState {
  file: StoreFile | null;
  fileSegment: SegmentInfo | null;
  /** Where a read continuing at `seq` resumes without a seek. */
  position: { seg: SegmentInfo; offset: number; seq: number } | null;
  /** The last chunk read, served again while reads continue inside it. */
  chunk: Chunk | null;
  /** Expired records up to here are already counted, so re-reads do not count them twice. */
  expiredThroughSeq: number;
  chain: Promise<void>;
}

export interface Chunk {
  seg: SegmentInfo;
  /** Segment offset of buf[0]. */
  base: number;
  buf: Buffer;
  got: number;
}

interface Cursor {
  seq: number;
  out: StoredRecord[];
  bytes: number;
  recordsMax: number;
  bytesMax: number;
  nowStoreMs: number;
}

/** Programmer errors, not input: the reader is the pump, which reads from its own cursor. */
export function assertReadArgs(
  lane: string,
  fromSeq: number,
  limits: { recordsMax?: number; bytesMax?: number },
): void {
  assert(Number.isSafeInteger(fromSeq) && fromSeq >= 1, `lane "${lane}": read from ${fromSeq}, not a seq`);
  for (const key of ['recordsMax', 'bytesMax'] as const) {
    const v = limits[key];
    const ok = v === undefined || (Number.isSafeInteger(v) && v >= 1);
    assert(ok, `lane "${lane}": read ${key} ${v}, not an integer >= 1`);
  }
}

export async function readLane(
  lane: ReadableLane,
  host: LaneHost,
  fromSeq: number,
  limits: { recordsMax?: number; bytesMax?: number },
): Promise<StoredRecord[]> {
  const cursor: Cursor = {
    seq: Math.max(1, Math.floor(fromSeq)),
    out: [],
    bytes: 0,
    recordsMax: Math.min(limits.recordsMax ?? READ_RECORDS_DEFAULT, READ_RECORDS_MAX),
    bytesMax: limits.bytesMax ?? READ_BYTES_DEFAULT,
    nowStoreMs: host.storeNowMs(),
  };
  while (cursor.out.length < cursor.recordsMax && cursor.bytes < cursor.bytesMax && cursor.seq <= lane.visibleSeq) {
    const seg = lane.segments.find((s) => !s.deleted && s.records > 0 && s.lastSeq >= cursor.seq);
    if (!seg) break;
    const done = await readSegment(lane, host, seg, cursor);
    if (done) {
      cursor.seq = Math.max(cursor.seq, seg.lastSeq + 1);
      lane.readState.position = null;
    }
  }
  return cursor.out;
}

function startOffset(lane: ReadableLane, seg: SegmentInfo, seq: number): number {
  const p = lane.readState.position;
  if (p && p.seg === seg && p.seq === seq) return p.offset;
  let offset = 0;
  for (const [indexSeq, indexOffset] of seg.index) {
    if (indexSeq > seq) break;
    offset = indexOffset;
  }
  return offset;
}

async function fileFor(lane: ReadableLane, host: LaneHost, seg: SegmentInfo): Promise<StoreFile> {
  const state = lane.readState;
  if (state.file && state.fileSegment === seg) return state.file;
  const previous = state.file;
  state.file = null;
  state.fileSegment = null;
  await previous?.close().catch(() => undefined);
  state.file = await host.fs.open(seg.path, 'read');
  state.fileSegment = seg;
  return state.file;
}

/**
 * The chunk a read needs: the cached one when `offset` falls inside it (a 500-record read uses a slice of
 * a 256 KiB chunk, READER_CHUNK_BYTES; the next read continues from the same chunk without I/O), else a
 * fresh read. A chunk is never overwritten: records handed out earlier keep pointing into it.
 */
async function chunkAt(
  lane: ReadableLane,
  seg: SegmentInfo,
  file: StoreFile,
  offset: number,
  limit: number,
  recordBytesMax: number,
): Promise<Chunk> {
  const cached = lane.readState.chunk;
  if (cached && cached.seg === seg && offset >= cached.base && offset < cached.base + cached.got) {
    // A record cut off at the chunk's end needs a fresh read starting at it.
    const res = parseRecord(cached.buf, offset - cached.base, cached.got, recordBytesMax);
    if (res.kind !== 'short' || cached.base + cached.got >= limit) return cached;
  }
  const want = Math.min(limit - offset, Math.max(READER_CHUNK_BYTES, recordBytesMax));
  const buf = Buffer.allocUnsafe(want);
  const got = await file.read(buf, offset);
  const chunk: Chunk = { seg, base: offset, buf, got };
  lane.readState.chunk = chunk;
  return chunk;
}

/** Reads one chunk of `seg` into the cursor; returns true when the segment holds nothing more for it. */
async function readSegment(lane: ReadableLane, host: LaneHost, seg: SegmentInfo, cursor: Cursor): Promise<boolean> {
  const file = await fileFor(lane, host, seg);
  const limit = seg.durableBytes;
  const recordBytesMax = host.opts.recordBytesMax;
  const offset = startOffset(lane, seg, cursor.seq);
  if (offset >= limit) return true;
  const { buf: chunk, base, got } = await chunkAt(lane, seg, file, offset, limit, recordBytesMax);
  if (got === 0) return true; // the file is shorter than we believed: nothing more to read in it
  let pos = offset - base;
  while (pos < got) {
    const res = parseRecord(chunk, pos, got, recordBytesMax);
    if (res.kind === 'short') {
      if (pos > offset - base && base + got < limit) break;
      return true; // a record cut off at the segment's readable end: nothing more here
    }
    if (res.kind === 'bad') {
      const from = base + pos;
      const next = await findNextRecord(file, from + 1, limit, cursor.seq - 1, recordBytesMax);
      noteDamage(host, lane, seg, from, next < 0 ? limit : next);
      if (next < 0) return true;
      lane.readState.position = { seg, offset: next, seq: cursor.seq };
      return false;
    }
    const h = res.header;
    if (h.flags & FLAG_SEAL) return true;
    pos += h.totalBytes;
    if (h.seq < cursor.seq) continue;
    if (h.expiresAtStoreMs !== 0 && h.expiresAtStoreMs <= cursor.nowStoreMs) {
      if (h.seq > lane.readState.expiredThroughSeq) {
        host.countExpired(1);
        lane.readState.expiredThroughSeq = h.seq;
      }
    } else {
      const start = pos - h.totalBytes + HEADER_BYTES;
      cursor.out.push({
        seq: h.seq,
        enqueuedAtMs: h.enqueuedAtMs,
        expiresAtStoreMs: h.expiresAtStoreMs,
        properties: h.propsBytes ? (decodeProperties(chunk, start, start + h.propsBytes) ?? {}) : {},
        body: chunk.subarray(start + h.propsBytes, start + h.propsBytes + h.bodyBytes),
      });
      cursor.bytes += h.totalBytes;
      lane.sampleAge(h.seq, h.enqueuedAtMs);
    }
    cursor.seq = h.seq + 1;
    if (cursor.out.length >= cursor.recordsMax || cursor.bytes >= cursor.bytesMax) break;
  }
  const end = base + pos;
  lane.readState.position = { seg, offset: end, seq: cursor.seq };
  return end >= limit && seg !== lane.active;
}

function noteDamage(host: LaneHost, lane: ReadableLane, seg: SegmentInfo, fromByte: number, toByte: number): void {
  host.reportDamage({ lane: lane.name, segment: seg.name, fromByte, toByte, kind: 'corrupt' });
}
