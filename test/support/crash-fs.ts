import type { OpenMode, OpenOptions, StoreFile, StoreFs } from '../../firmware/store/fs.js';

/**
 * An in-memory file system that records every operation the store makes and which data was synced, so
 * that any prefix of a run can be turned into the states a power cut may leave behind (see crashState).
 * Semantics modelled: `datasync` makes a file's whole content and size durable; a directory entry
 * (create, mkdir, unlink) is durable only after `syncDir` of its parent. The root directory exists.
 */
export type Op =
  | { t: 'mkdir'; dir: string; name: string }
  | { t: 'create'; dir: string; name: string; ino: number }
  /** `quota`: the store deleted it to make room (drop-oldest), not because its records were done. */
  | { t: 'unlink'; dir: string; name: string; ino: number; quota: boolean }
  | { t: 'write'; ino: number; pos: number; data: Buffer }
  | { t: 'truncate'; ino: number; len: number }
  | { t: 'datasync'; ino: number }
  | { t: 'syncdir'; dir: string };

type Entry = { kind: 'dir' } | { kind: 'file'; ino: number };

/** A sync site to skip, named by operation and a function on the caller's stack (the mutation check). */
export interface DisabledSite {
  /** 'dsync': an O_DSYNC open whose writes then behave as plain (unsynced) writes. */
  op: 'datasync' | 'syncdir' | 'dsync';
  fn: string;
}

export class SimFs implements StoreFs {
  readonly ops: Op[] = [];
  readonly dirs = new Map<string, Map<string, Entry>>();
  readonly files = new Map<number, Buffer>();
  private nextIno = 1;
  disabled: DisabledSite | null = null;
  /** What was on disk before `ops` began (a crash state being recovered); null for an empty disk. */
  baseState: { dirs: Map<string, Map<string, Entry>>; files: Map<number, Buffer> } | null = null;
  /** Skipped syncs, shared by every state derived from this run (so recovery's syncs count too). */
  siteHits = { count: 0 };
  /** Fail the n-th datasync from now (1 = the next) with EIO, without making anything durable. */
  failDatasyncIn = 0;

  constructor(readonly root: string) {
    this.dirs.set(root, new Map());
  }

  private split(path: string): { dir: string; name: string } {
    const i = path.lastIndexOf('/');
    return { dir: path.slice(0, i), name: path.slice(i + 1) };
  }

  private entry(path: string): Entry | undefined {
    const { dir, name } = this.split(path);
    return this.dirs.get(dir)?.get(name);
  }

  private skip(op: DisabledSite['op']): boolean {
    if (!this.disabled || this.disabled.op !== op) return false;
    if (!(new Error().stack ?? '').includes(this.disabled.fn)) return false;
    this.siteHits.count++;
    return true;
  }

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<StoreFile> {
    const { dir, name } = this.split(path);
    const parent = this.dirs.get(dir);
    if (!parent) throw errno('ENOENT', path);
    let e = parent.get(name);
    if (mode === 'create') {
      if (e) throw errno('EEXIST', path);
      e = { kind: 'file', ino: this.nextIno++ };
      parent.set(name, e);
      this.files.set(e.ino, Buffer.alloc(0));
      this.ops.push({ t: 'create', dir, name, ino: e.ino });
    }
    if (!e) throw errno('ENOENT', path);
    if (e.kind !== 'file') throw errno('EISDIR', path);
    const dsync = options?.dsync === true && !this.skip('dsync');
    return this.handle(e.ino, mode === 'read', dsync);
  }

  private handle(ino: number, readOnly: boolean, dsync: boolean): StoreFile {
    const fs = this;
    return {
      async write(buf, pos) {
        if (readOnly) throw errno('EBADF', `ino ${ino}`);
        const cur = fs.files.get(ino)!;
        const next = Buffer.alloc(Math.max(cur.length, pos + buf.length));
        cur.copy(next);
        buf.copy(next, pos);
        fs.files.set(ino, next);
        fs.ops.push({ t: 'write', ino, pos, data: Buffer.from(buf) });
        // O_DSYNC: the write is durable when it returns, as if an fdatasync followed it at once; a failed
        // sync is reported by the write, and then its bytes are of unknown state (left unsynced here).
        if (!dsync) return;
        if (fs.failDatasyncIn > 0 && --fs.failDatasyncIn === 0) throw errno('EIO', `dsync write ino ${ino}`);
        fs.ops.push({ t: 'datasync', ino });
      },
      async read(buf, pos) {
        const cur = fs.files.get(ino)!;
        if (pos >= cur.length) return 0;
        return cur.copy(buf, 0, pos, Math.min(cur.length, pos + buf.length));
      },
      async datasync() {
        if (fs.failDatasyncIn > 0 && --fs.failDatasyncIn === 0) throw errno('EIO', `datasync ino ${ino}`);
        if (fs.skip('datasync')) return;
        fs.ops.push({ t: 'datasync', ino });
      },
      async truncate(len) {
        const cur = fs.files.get(ino)!;
        const next = Buffer.alloc(len);
        cur.copy(next, 0, 0, Math.min(len, cur.length));
        fs.files.set(ino, next);
        fs.ops.push({ t: 'truncate', ino, len });
      },
      async size() {
        return fs.files.get(ino)!.length;
      },
      async close() {},
    };
  }

  async readdir(dir: string): Promise<string[]> {
    return [...(this.dirs.get(dir)?.keys() ?? [])];
  }

  async mkdir(path: string): Promise<void> {
    const parts = path.slice(this.root.length).split('/').filter(Boolean);
    let cur = this.root;
    for (const part of parts) {
      const next = `${cur}/${part}`;
      if (!this.dirs.get(cur)!.has(part)) {
        this.dirs.get(cur)!.set(part, { kind: 'dir' });
        this.dirs.set(next, new Map());
        this.ops.push({ t: 'mkdir', dir: cur, name: part });
      }
      cur = next;
    }
  }

  async unlink(path: string): Promise<void> {
    const { dir, name } = this.split(path);
    const e = this.entry(path);
    if (!e || e.kind !== 'file') throw errno('ENOENT', path);
    this.dirs.get(dir)!.delete(name);
    this.ops.push({ t: 'unlink', dir, name, ino: e.ino, quota: (new Error().stack ?? '').includes('makeRoom') });
  }

  async rename(): Promise<void> {
    throw new Error('SimFs: the store does not rename; model it here before using it');
  }

  async syncDir(dir: string): Promise<void> {
    if (!this.dirs.has(dir)) throw errno('ENOENT', dir);
    if (this.skip('syncdir')) return;
    this.ops.push({ t: 'syncdir', dir });
  }
}

function errno(code: string, path: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${path}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

export type Fate = 'durable-only' | 'everything' | 'random';
const SECTOR_BYTES = 512;

/** A fresh SimFs holding what a power cut after the first `cut` ops of `fs` may have left on disk. */
export function crashState(fs: SimFs, cut: number, fate: Fate, rand: () => number): SimFs {
  const out = new SimFs(fs.root);
  out.disabled = fs.disabled;
  out.siteHits = fs.siteHits;
  (out as unknown as { nextIno: number }).nextIno = 1_000_000 + Math.floor(rand() * 1_000_000);
  const base = fs.baseState;
  const lastFileSync = new Map<number, number>();
  const lastDirSync = new Map<string, number>();
  for (let i = 0; i < cut; i++) {
    const op = fs.ops[i]!;
    if (op.t === 'datasync') lastFileSync.set(op.ino, i);
    else if (op.t === 'syncdir') lastDirSync.set(op.dir, i);
  }
  const keep = (synced: boolean, p: number) => synced || fate === 'everything' || (fate === 'random' && rand() < p);
  const files = new Map<number, Buffer>(base ? [...base.files].map(([ino, b]) => [ino, Buffer.from(b)]) : []);
  const dirs = new Map<string, Map<string, Entry>>(base ? [...base.dirs].map(([d, m]) => [d, new Map(m)]) : [[fs.root, new Map()]]);
  for (let i = 0; i < cut; i++) {
    const op = fs.ops[i]!;
    if (op.t === 'write' || op.t === 'truncate') {
      const synced = i < (lastFileSync.get(op.ino) ?? -1);
      const cur = files.get(op.ino) ?? Buffer.alloc(0);
      if (op.t === 'truncate') {
        if (keep(synced, 0.5)) files.set(op.ino, Buffer.from(cur.subarray(0, op.len)));
        continue;
      }
      if (synced || fate === 'everything') files.set(op.ino, applyWrite(cur, op.pos, op.data));
      else if (fate === 'random') {
        const r = rand();
        if (r < 0.4) files.set(op.ino, applyWrite(cur, op.pos, op.data));
        else if (r < 0.7) files.set(op.ino, applyWrite(cur, op.pos, tear(op.pos, op.data, rand)));
      }
    } else if (op.t === 'create' || op.t === 'mkdir' || op.t === 'unlink') {
      const synced = i < (lastDirSync.get(op.dir) ?? -1);
      if (!keep(synced, 0.5)) continue;
      if (!dirs.has(op.dir)) continue;
      if (op.t === 'create') {
        dirs.get(op.dir)!.set(op.name, { kind: 'file', ino: op.ino });
        if (!files.has(op.ino)) files.set(op.ino, Buffer.alloc(0));
      } else if (op.t === 'mkdir') {
        dirs.get(op.dir)!.set(op.name, { kind: 'dir' });
        if (!dirs.has(`${op.dir}/${op.name}`)) dirs.set(`${op.dir}/${op.name}`, new Map());
      } else dirs.get(op.dir)!.delete(op.name);
    }
  }
  // Keep only what is reachable from the root: a directory whose entry was lost takes its files with it.
  const reach = (dir: string) => {
    const entries = dirs.get(dir) ?? new Map<string, Entry>();
    out.dirs.set(dir, new Map(entries));
    for (const [name, e] of entries) {
      if (e.kind === 'dir') reach(`${dir}/${name}`);
      else out.files.set(e.ino, files.get(e.ino) ?? Buffer.alloc(0));
    }
  };
  reach(fs.root);
  out.baseState = { dirs: new Map([...out.dirs].map(([d, m]) => [d, new Map(m)])), files: new Map([...out.files].map(([i, b]) => [i, Buffer.from(b)])) };
  return out;
}

function applyWrite(cur: Buffer, pos: number, data: Buffer): Buffer {
  const next = Buffer.alloc(Math.max(cur.length, pos + data.length));
  cur.copy(next);
  data.copy(next, pos);
  return next;
}

/** The write as a power cut may leave it: each 512-byte sector new, zeros or garbage. */
function tear(pos: number, data: Buffer, rand: () => number): Buffer {
  const out = Buffer.from(data);
  let start = 0;
  while (start < out.length) {
    const end = Math.min(out.length, start + SECTOR_BYTES - ((pos + start) % SECTOR_BYTES));
    const r = rand();
    if (r < 0.33) out.fill(0, start, end);
    else if (r < 0.66) for (let i = start; i < end; i++) out[i] = Math.floor(rand() * 256);
    start = end;
  }
  return out;
}

/** Writes a SimFs state to real files under `target` (its root maps to `target`). */
export function materialize(state: SimFs, target: string, write: (path: string, data: Buffer | null) => void): void {
  const walk = (dir: string) => {
    for (const [name, e] of state.dirs.get(dir) ?? []) {
      const path = `${dir}/${name}`;
      const real = target + path.slice(state.root.length);
      if (e.kind === 'dir') {
        write(real, null);
        walk(path);
      } else write(real, state.files.get(e.ino) ?? Buffer.alloc(0));
    }
  };
  walk(state.root);
}
