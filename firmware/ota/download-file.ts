import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, rm, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The partial artifact on disk and what is known of it, so a download resumes after a restart or a power cut.
 * `artifact.part` grows by appends; `artifact.json` records how many of its bytes were synced (a power cut may
 * leave a longer file whose tail is zeros or garbage: the file is cut back to that length on resume) and the
 * server's validators (ETag, Last-Modified) for the If-Range of the next request. The record is replaced
 * atomically (temp file, fsync, rename, directory fsync), so it is the old one or the new one, never torn.
 */

export const PART_FILE_NAME = 'artifact.part';
const META_FILE_NAME = 'artifact.json';
const META_TEMP_NAME = `${META_FILE_NAME}.tmp`;
const META_FORMAT = 1;
/** The record is a few hundred bytes; a larger file is not ours and is ignored (the download starts over). */
const META_FILE_BYTES_MAX = 16 * 1024;

export interface PartRecord {
  /** The artifact the part belongs to: a different manifest's part is thrown away, not resumed. */
  sha256: string;
  bytes: number;
  /** Bytes of artifact.part known to be on disk (fdatasync'ed before this record was written). */
  durableBytes: number;
  /** The server's validators for the bytes so far; a resumed range must come from the same entity. */
  etag: string | null;
  lastModified: string | null;
}

/** The saved record; null when there is none or it cannot be used (then the download starts from zero). */
export async function loadPartRecord(dir: string): Promise<PartRecord | null> {
  let bytes: Buffer;
  try {
    bytes = await readFile(join(dir, META_FILE_NAME));
  } catch {
    return null;
  }
  if (bytes.length > META_FILE_BYTES_MAX) return null;
  try {
    const doc = JSON.parse(bytes.toString('utf8')) as Partial<PartRecord & { format: number }>;
    const ok =
      doc.format === META_FORMAT &&
      typeof doc.sha256 === 'string' &&
      Number.isSafeInteger(doc.bytes) &&
      Number.isSafeInteger(doc.durableBytes) &&
      doc.durableBytes! >= 0 &&
      doc.durableBytes! <= doc.bytes!;
    if (!ok) return null;
    return {
      sha256: doc.sha256!,
      bytes: doc.bytes!,
      durableBytes: doc.durableBytes!,
      etag: typeof doc.etag === 'string' ? doc.etag : null,
      lastModified: typeof doc.lastModified === 'string' ? doc.lastModified : null,
    };
  } catch {
    return null;
  }
}

export async function savePartRecord(dir: string, record: PartRecord): Promise<void> {
  const temp = join(dir, META_TEMP_NAME);
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify({ format: META_FORMAT, ...record }) + '\n');
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dir, META_FILE_NAME));
  await syncDir(dir);
}

/** Removes the part and its record (a finished, refused or superseded download). */
export async function discardPart(dir: string): Promise<void> {
  await rm(join(dir, META_FILE_NAME), { force: true });
  await rm(join(dir, PART_FILE_NAME), { force: true });
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/**
 * The open part file with its running sha256. Opening it resumes: the file is cut back to the record's durable
 * length and that prefix is hashed from disk (a Hash cannot be saved), so the final digest covers every byte.
 */
export class PartFile {
  private hash: Hash = createHash('sha256');
  /** Bytes written (in the page cache at least): where the next byte goes and the next Range starts. */
  length = 0;

  private constructor(
    private readonly handle: FileHandle,
    readonly path: string,
  ) {}

  static async open(dir: string, resumeBytes: number): Promise<PartFile> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, PART_FILE_NAME);
    const handle = await open(path, 'a+', 0o600).then(async (h) => {
      // 'a+' creates it; r+ is what lets writes go to a position (appends ignore it on Linux).
      await h.close();
      return open(path, 'r+');
    });
    const part = new PartFile(handle, path);
    try {
      const size = (await handle.stat()).size;
      const keep = Math.min(resumeBytes, size);
      await handle.truncate(keep);
      if (keep > 0) await part.hashPrefix(keep);
      part.length = keep;
    } catch (err) {
      await handle.close();
      throw err;
    }
    return part;
  }

  /** Starts over: the server sent a different artifact or a whole body instead of the range asked for. */
  async reset(): Promise<void> {
    await this.handle.truncate(0);
    this.hash = createHash('sha256');
    this.length = 0;
  }

  async append(chunk: Buffer): Promise<void> {
    let offset = 0;
    while (offset < chunk.length) {
      const { bytesWritten } = await this.handle.write(chunk, offset, chunk.length - offset, this.length + offset);
      offset += bytesWritten;
    }
    this.hash.update(chunk);
    this.length += chunk.length;
  }

  /** Makes every byte so far durable; returns the durable length for the record. */
  async sync(): Promise<number> {
    await this.handle.datasync();
    return this.length;
  }

  /** The sha256 of everything written, hex. The running hash is not consumed: a copy is finished. */
  digest(): string {
    return this.hash.copy().digest('hex');
  }

  async close(): Promise<void> {
    await this.handle.close();
  }

  private async hashPrefix(bytes: number): Promise<void> {
    const stream = createReadStream(this.path, { start: 0, end: bytes - 1 });
    for await (const chunk of stream as AsyncIterable<Buffer>) this.hash.update(chunk);
  }
}
