import * as fs from 'node:fs/promises';
import { constants } from 'node:fs';
import { basename, dirname } from 'node:path';

/**
 * Every file operation the store makes goes through this interface. Production uses node:fs; the
 * power-cut simulator (test/support) swaps in a layer that records which bytes were synced.
 * Contract: `write` and `read` are positional (pwrite/pread); `datasync` makes the file's data and size
 * durable; a created, renamed or unlinked name is durable only after `syncDir` of its parent.
 */
export interface StoreFile {
  write(buf: Buffer, position: number): Promise<void>;
  /** Reads up to buf.length bytes at position; returns how many were read (0 at end of file). */
  read(buf: Buffer, position: number): Promise<number>;
  datasync(): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export type OpenMode =
  | 'read' // existing file, read only
  | 'readwrite' // existing file, read and write
  | 'create'; // new file, fails if it exists (O_EXCL)

export interface OpenOptions {
  /**
   * O_DSYNC: each write returns only once its data (and the size needed to read it) is on stable
   * storage, like write + fdatasync in one thread-pool request. Group commit uses it so the sync runs
   * while JavaScript frames the next batch, instead of waiting for an event-loop turn between the two.
   */
  dsync?: boolean;
}

export interface StoreFs {
  open(path: string, mode: OpenMode, options?: OpenOptions): Promise<StoreFile>;
  /** Names in a directory; [] when the directory does not exist. */
  readdir(dir: string): Promise<string[]>;
  mkdir(dir: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  syncDir(dir: string): Promise<void>;
}

/**
 * Test-only mutation switch for the field VM's power-cut rig (test/vm/powercut.test.ts): with
 * OUTPOST_TEST_STORE_NO_SYNC=1 in the environment, datasync, O_DSYNC and directory syncs are skipped, so
 * appends are acknowledged before they are durable. The rig must then find lost acknowledged records; that is
 * how it proves it can see them. Not a board.json option (the config schema has no way to reach it), and the
 * store warns at start when it is on.
 */
export const SYNC_DISABLED_FOR_TESTS = process.env.OUTPOST_TEST_STORE_NO_SYNC === '1';
if (SYNC_DISABLED_FOR_TESTS) {
  process.emitWarning('OUTPOST_TEST_STORE_NO_SYNC=1: the ring log does not sync; acknowledged data can be lost');
}

class NodeFile implements StoreFile {
  constructor(private readonly handle: fs.FileHandle) {}

  async write(buf: Buffer, position: number): Promise<void> {
    let done = 0;
    // A short write is legal for pwrite; loop until the whole buffer is down.
    while (done < buf.length) {
      const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, position + done);
      done += bytesWritten;
    }
  }

  async read(buf: Buffer, position: number): Promise<number> {
    const { bytesRead } = await this.handle.read(buf, 0, buf.length, position);
    return bytesRead;
  }

  datasync(): Promise<void> {
    if (SYNC_DISABLED_FOR_TESTS) return Promise.resolve();
    return this.handle.datasync();
  }

  truncate(length: number): Promise<void> {
    return this.handle.truncate(length);
  }

  async size(): Promise<number> {
    return (await this.handle.stat()).size;
  }

  close(): Promise<void> {
    return this.handle.close();
  }
}

const OPEN_FLAGS: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  readwrite: constants.O_RDWR,
  create: constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
};

export const nodeFs: StoreFs = {
  async open(path, mode, options) {
    const flags = OPEN_FLAGS[mode] | (options?.dsync && !SYNC_DISABLED_FOR_TESTS ? constants.O_DSYNC : 0);
    return new NodeFile(await fs.open(path, flags, 0o640));
  },
  async readdir(dir) {
    try {
      return await fs.readdir(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  },
  async mkdir(dir) {
    await fs.mkdir(dir, { recursive: true, mode: 0o750 });
  },
  unlink: (path) => fs.unlink(path),
  rename: (from, to) => fs.rename(from, to),
  async syncDir(dir) {
    if (SYNC_DISABLED_FOR_TESTS) return;
    const handle = await fs.open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
};

/**
 * Creates `dir` (and `sub` inside it) if missing and makes every directory entry this created durable:
 * a data directory made on first start would otherwise vanish in a power cut with everything in it.
 */
export async function mkdirDurable(fs: StoreFs, dir: string, sub: string): Promise<void> {
  const created: string[] = [];
  for (let p = dir; dirname(p) !== p; p = dirname(p)) {
    if ((await fs.readdir(dirname(p))).includes(basename(p))) break;
    created.push(p);
  }
  await fs.mkdir(`${dir}/${sub}`);
  for (const p of created) await fs.syncDir(dirname(p));
}
