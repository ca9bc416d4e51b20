import assert from 'node:assert/strict';
import { crc32 } from 'node:zlib';

/*
 * Record framing, little-endian, 32-byte header:
 *   0  u32 crc32 of bytes [4, end)        — zlib.crc32, native in Node 20
 *   4  u8  magic RECORD_MAGIC              — lets recovery find the next header after damage
 *   5  u8  flags (FLAG_SEAL)
 *   6  u16 properties length
 *   8  u32 body length
 *  12  u32 seq low, 16 u32 seq high        — seq < 2^53
 *  20  u48 enqueue wall-clock ms
 *  26  u48 expiry in store-clock ms (0 = never)
 *  32  properties: repeated [u8 key length][key][u16 value length][value], UTF-8
 *      body
 */
export const HEADER_BYTES = 32;
export const RECORD_MAGIC = 0xb7;
/** The last record of a sealed segment: its body is a SealSummary. */
export const FLAG_SEAL = 0x01;
const KNOWN_FLAGS = FLAG_SEAL;
/** A property key's length has one byte in the record format (u8). */
const PROPERTY_KEY_BYTES_MAX = 255;
/** A property value's length has two bytes (u16). */
const PROPERTY_VALUE_BYTES_MAX = 65_535;
/** The header's property-map length field is a u16. */
export const PROPERTIES_BYTES_MAX = 65_535;
/** The header's times are u48 ms: about 8,900 years past 1970. */
const U48_MAX = 2 ** 48 - 1;

export interface RecordHeader {
  seq: number;
  flags: number;
  propsBytes: number;
  bodyBytes: number;
  enqueuedAtMs: number;
  expiresAtStoreMs: number;
  /** Header + properties + body. */
  totalBytes: number;
}

export function encodeProperties(properties: Record<string, string> | undefined): Buffer | null {
  if (!properties) return null;
  const keys = Object.keys(properties);
  if (keys.length === 0) return null;
  const parts: Buffer[] = [];
  for (const key of keys) {
    const k = Buffer.from(key, 'utf8');
    const v = Buffer.from(String(properties[key]), 'utf8');
    if (k.length === 0 || k.length > PROPERTY_KEY_BYTES_MAX) {
      throw new RangeError(`property key "${key.slice(0, 40)}" must be 1..${PROPERTY_KEY_BYTES_MAX} bytes`);
    }
    if (v.length > PROPERTY_VALUE_BYTES_MAX) {
      throw new RangeError(`property "${key.slice(0, 40)}" value must be at most ${PROPERTY_VALUE_BYTES_MAX} bytes`);
    }
    parts.push(Buffer.from([k.length]), k, Buffer.from([v.length & 0xff, v.length >>> 8]), v);
  }
  const out = Buffer.concat(parts);
  if (out.length > PROPERTIES_BYTES_MAX) {
    throw new RangeError(`properties must be at most ${PROPERTIES_BYTES_MAX} bytes encoded, got ${out.length}`);
  }
  return out;
}

/** Returns null when the encoded map is malformed (only possible with a CRC collision or a bug). */
export function decodeProperties(buf: Buffer, start: number, end: number): Record<string, string> | null {
  const out: Record<string, string> = {};
  let pos = start;
  while (pos < end) {
    const keyBytes = buf[pos]!;
    if (pos + 1 + keyBytes + 2 > end) return null;
    const key = buf.toString('utf8', pos + 1, pos + 1 + keyBytes);
    pos += 1 + keyBytes;
    const valueBytes = buf.readUInt16LE(pos);
    pos += 2;
    if (pos + valueBytes > end) return null;
    out[key] = buf.toString('utf8', pos, pos + valueBytes);
    pos += valueBytes;
  }
  return out;
}

export interface EncodeInput {
  seq: number;
  flags: number;
  enqueuedAtMs: number;
  expiresAtStoreMs: number;
  props: Buffer | null;
  body: Buffer;
}

export function recordBytes(props: Buffer | null, body: Buffer): number {
  return HEADER_BYTES + (props ? props.length : 0) + body.length;
}

/** Writes one framed record into `target` at `offset`; returns its length. */
export function encodeRecord(target: Buffer, offset: number, rec: EncodeInput): number {
  const propsBytes = rec.props ? rec.props.length : 0;
  const total = HEADER_BYTES + propsBytes + rec.body.length;
  assert(offset + total <= target.length && rec.seq > 0, 'encodeRecord: target too small or bad seq');
  target[offset + 4] = RECORD_MAGIC;
  target[offset + 5] = rec.flags;
  target.writeUInt16LE(propsBytes, offset + 6);
  target.writeUInt32LE(rec.body.length, offset + 8);
  target.writeUInt32LE(rec.seq % 0x1_0000_0000, offset + 12);
  target.writeUInt32LE(Math.floor(rec.seq / 0x1_0000_0000), offset + 16);
  writeU48(target, clampU48(rec.enqueuedAtMs), offset + 20);
  writeU48(target, clampU48(rec.expiresAtStoreMs), offset + 26);
  let pos = offset + HEADER_BYTES;
  if (rec.props) {
    target.set(rec.props, pos);
    pos += rec.props.length;
  }
  // TypedArray.set stays inside V8 for small bodies; Buffer.copy crosses into C++ for each record.
  target.set(rec.body, pos);
  target.writeUInt32LE(crc32(target.subarray(offset + 4, offset + total)), offset);
  return total;
}

/** writeUIntLE(…, 6) is generic and slow on the hot path; two fixed-width writes do the same. */
function writeU48(target: Buffer, value: number, offset: number): void {
  target.writeUInt32LE(value % 0x1_0000_0000, offset);
  target.writeUInt16LE(Math.floor(value / 0x1_0000_0000), offset + 4);
}

function clampU48(value: number): number {
  if (!(value > 0)) return 0;
  return Math.min(Math.floor(value), U48_MAX);
}

export type ParseResult =
  | { kind: 'ok'; header: RecordHeader }
  /** Not enough bytes in the buffer to decide: read more, or (at end of file) a torn tail. */
  | { kind: 'short' }
  | { kind: 'bad' };

const SHORT: ParseResult = { kind: 'short' };
const BAD: ParseResult = { kind: 'bad' };

/**
 * Parses and CRC-checks the record at buf[pos..end). `recordBytesMax` bounds the length fields so a
 * damaged length can never make us read or allocate past what a real record could be.
 */
export function parseRecord(buf: Buffer, pos: number, end: number, recordBytesMax: number): ParseResult {
  if (end - pos < HEADER_BYTES) return SHORT;
  if (buf[pos + 4] !== RECORD_MAGIC) return BAD;
  const flags = buf[pos + 5]!;
  if ((flags & ~KNOWN_FLAGS) !== 0) return BAD;
  const propsBytes = buf.readUInt16LE(pos + 6);
  const bodyBytes = buf.readUInt32LE(pos + 8);
  const totalBytes = HEADER_BYTES + propsBytes + bodyBytes;
  if (totalBytes > recordBytesMax) return BAD;
  const seqHigh = buf.readUInt32LE(pos + 16);
  if (seqHigh >= 0x20_0000) return BAD;
  if (end - pos < totalBytes) return SHORT;
  if (crc32(buf.subarray(pos + 4, pos + totalBytes)) !== buf.readUInt32LE(pos)) return BAD;
  return {
    kind: 'ok',
    header: {
      seq: seqHigh * 0x1_0000_0000 + buf.readUInt32LE(pos + 12),
      flags,
      propsBytes,
      bodyBytes,
      enqueuedAtMs: buf.readUIntLE(pos + 20, 6),
      expiresAtStoreMs: buf.readUIntLE(pos + 26, 6),
      totalBytes,
    },
  };
}

/** The body of the seal record that closes a segment: lets `open` learn a segment from its last bytes. */
export interface SealSummary {
  firstSeq: number;
  lastSeq: number;
  records: number;
  /** Largest expiry in the segment (store ms); 0 if any record never expires. */
  maxExpiresAtStoreMs: number;
  /** Smallest enqueue wall time; for stats only. */
  firstEnqueuedAtMs: number;
}

/** SealSummary's five numbers as 8-byte doubles; the whole seal record adds the usual header. */
export const SEAL_BODY_BYTES = 40;
/** The seal record's whole size, bytes: a segment reserves it so a seal always fits. */
export const SEAL_RECORD_BYTES = HEADER_BYTES + SEAL_BODY_BYTES;

export function encodeSealBody(s: SealSummary): Buffer {
  const out = Buffer.alloc(SEAL_BODY_BYTES);
  out.writeDoubleLE(s.firstSeq, 0);
  out.writeDoubleLE(s.lastSeq, 8);
  out.writeDoubleLE(s.records, 16);
  out.writeDoubleLE(s.maxExpiresAtStoreMs, 24);
  out.writeDoubleLE(s.firstEnqueuedAtMs, 32);
  return out;
}

export function decodeSealBody(buf: Buffer, pos: number): SealSummary {
  return {
    firstSeq: buf.readDoubleLE(pos),
    lastSeq: buf.readDoubleLE(pos + 8),
    records: buf.readDoubleLE(pos + 16),
    maxExpiresAtStoreMs: buf.readDoubleLE(pos + 24),
    firstEnqueuedAtMs: buf.readDoubleLE(pos + 32),
  };
}
