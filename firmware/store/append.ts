import type { Batch } from './batch.js';
import { StoreError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import { SEAL_RECORD_BYTES, encodeProperties, recordBytes } from './record.js';
import type { AppendInput } from './types.js';

/** One append input, checked and measured, ready to be framed into a batch. */
export interface Prepared {
  props: Buffer | null;
  total: number;
  ttlSecs: number;
  body: Buffer;
}

/** Checks one input to lane `laneName` (body, size, TTL) before anything of its call is queued. */
export function prepareRecord(laneName: string, opts: ResolvedOptions, input: AppendInput): Prepared {
  if (!Buffer.isBuffer(input.body))
    throw new StoreError('INVALID', `append to lane "${laneName}": body must be a Buffer`);
  let props: Buffer | null;
  try {
    props = encodeProperties(input.properties);
  } catch (err) {
    // A key or value over the record format's lengths: the record is too large, like one over recordBytesMax.
    throw new StoreError('TOO_LARGE', `append to lane "${laneName}": ${(err as Error).message}`);
  }
  const total = recordBytes(props, input.body);
  if (total > opts.recordBytesMax) {
    throw new StoreError(
      'TOO_LARGE',
      `record of ${total} bytes exceeds "recordBytesMax" (${opts.recordBytesMax}) on lane "${laneName}"`,
    );
  }
  const ttlSecs = input.ttlSecs ?? opts.ttlSecs;
  if (!Number.isInteger(ttlSecs) || ttlSecs < 0)
    throw new StoreError('INVALID', `"ttlSecs" must be a non-negative integer, got ${ttlSecs}`);
  return { props, total, ttlSecs, body: input.body };
}

/** Resolves with the batch's last seq (as framed so far) once the batch is committed. */
export function waitFor(batch: Batch): Promise<number> {
  const seq = batch.lastSeq;
  return new Promise((resolve, reject) => batch.wait({ seq, resolve, reject }));
}

/**
 * Bytes records of `sizes` take when appended to a segment whose projected tail is `tailBytes`: their
 * own plus the seal record of each segment they fill (Lane.encode rolls on the same condition).
 */
export function bytesWithSeals(sizes: number[], tailBytes: number, segmentBytes: number): number {
  let bytes = 0;
  let tail = tailBytes;
  for (const size of sizes) {
    if (tail + size + SEAL_RECORD_BYTES > segmentBytes) {
      bytes += SEAL_RECORD_BYTES;
      tail = 0;
    }
    tail += size;
    bytes += size;
  }
  return bytes;
}
