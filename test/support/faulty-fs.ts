import type { OpenMode, OpenOptions, StoreFile, StoreFs } from '../../firmware/store/fs.js';
import { nodeFs } from '../../firmware/store/fs.js';

export type FsOp = 'write' | 'datasync' | 'syncDir' | 'open' | 'truncate' | 'unlink';

/**
 * node:fs with errors injected at the store's fs boundary: `failNext('datasync', 'EIO')` makes the next
 * datasync throw an errno-style error, the way a dying SD card or a full disk reports itself.
 */
export class FaultyFs implements StoreFs {
  private readonly plan: Array<{ op: FsOp; code: string; remaining: number; pathIncludes?: string }> = [];
  readonly calls: Record<FsOp, number> = { write: 0, datasync: 0, syncDir: 0, open: 0, truncate: 0, unlink: 0 };

  failNext(op: FsOp, code: string, times = 1, pathIncludes?: string): void {
    this.plan.push({ op, code, remaining: times, pathIncludes });
  }

  clear(): void {
    this.plan.length = 0;
  }

  /** Throws when a planned fault matches this call. */
  check(op: FsOp, path: string): void {
    this.calls[op]++;
    const fault = this.plan.find(
      (p) => p.op === op && p.remaining > 0 && (!p.pathIncludes || path.includes(p.pathIncludes)),
    );
    if (!fault) return;
    fault.remaining--;
    const err = new Error(`${fault.code}: injected on ${op} ${path}`) as NodeJS.ErrnoException;
    err.code = fault.code;
    throw err;
  }

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<StoreFile> {
    this.check('open', path);
    const inner = await nodeFs.open(path, mode, options);
    const check = (op: FsOp) => this.check(op, path);
    return {
      async write(buf, position) {
        check('write');
        await inner.write(buf, position);
        // An O_DSYNC write reports a failed sync as its own failure, after the bytes went out.
        if (options?.dsync) check('datasync');
      },
      read: (buf, position) => inner.read(buf, position),
      async datasync() {
        check('datasync');
        return inner.datasync();
      },
      async truncate(length) {
        check('truncate');
        return inner.truncate(length);
      },
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }

  readdir = (dir: string) => nodeFs.readdir(dir);
  mkdir = (dir: string) => nodeFs.mkdir(dir);
  rename = (from: string, to: string) => nodeFs.rename(from, to);

  async unlink(path: string): Promise<void> {
    this.check('unlink', path);
    return nodeFs.unlink(path);
  }

  async syncDir(dir: string): Promise<void> {
    this.check('syncDir', dir);
    return nodeFs.syncDir(dir);
  }
}
