import type { OpenMode, OpenOptions, StoreFile, StoreFs } from '../../firmware/store/fs.js';

/**
 * An in-memory file system that records every operation the store makes and which data was synced, so
 * that any prefix of a run can be turned into the states a power cut may leave behind (see crashState).
 * An operation is recorded when it completes, not when it is called: each one first yields to whatever
 * else is running, so a caller that acts before its write or sync has returned is caught.
 * Semantics modelled: `datasync` makes durable what was written (or truncated) in the file before it was
 * called; an O_DSYNC write makes durable its own bytes only (Linux syncs the written range), never earlier
 * plain writes to the file; a directory entry (create, mkdir, unlink) is durable only after a `syncDir`
 * of its parent called after the entry changed. The root directory and its entry in its parent exist.
 */
export type Op =
  | { t: 'mkdir'; dir: string; name: string }
  | { t: 'create'; dir: string; name: string; ino: number }
  /** `quota`: the store deleted it to make room (drop-oldest), not because its records were done. */
  | { t: 'unlink'; dir: string; name: string; ino: number; quota: boolean }
  /** `dsync`: written through O_DSYNC and returned, so these bytes are durable. */
  | { t: 'write'; ino: number; pos: number; data: Buffer; dsync: boolean }
  | { t: 'truncate'; ino: number; len: number }
  /** Covers the file's writes and truncates recorded before op index `coversBefore` (its call). */
  | { t: 'datasync'; ino: number; coversBefore: number }
  /** Covers the directory's entry changes recorded before op index `coversBefore` (its call). */
  | { t: 'syncdir'; dir: string; coversBefore: number };

type Entry = { kind: 'dir' } | { kind: 'file'; ino: number };

/** A sync site to skip, named by operation and a function on the caller's stack (the mutation check). */
export interface DisabledSite {
  /** 'dsync': an O_DSYNC open whose writes then behave as plain (unsynced) writes. */
  op: 'datasync' | 'syncdir' | 'dsync';
  fn: string;
}

/**
 * Microtask turns an operation takes before it completes: enough for concurrent callers (one sync per
 * lane under Promise.all) to interleave, and deterministic, so every run's op sequence is reproducible.
 */
const OP_TURNS = 3;

async function inFlight(): Promise<void> {
  for (let i = 0; i < OP_TURNS; i++) await Promise.resolve();
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

  /** Decided at the call, while the caller's frames are still on the stack. */
  private skip(op: DisabledSite['op']): boolean {
    if (!this.disabled || this.disabled.op !== op) return false;
    if (!(new Error().stack ?? '').includes(this.disabled.fn)) return false;
    this.siteHits.count++;
    return true;
  }

  private failSync(): boolean {
    return this.failDatasyncIn > 0 && --this.failDatasyncIn === 0;
  }

  async open(path: string, mode: OpenMode, options?: OpenOptions): Promise<StoreFile> {
    const dsync = options?.dsync === true && !this.skip('dsync');
    await inFlight();
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
    return this.handle(e.ino, mode === 'read', dsync);
  }

  private handle(ino: number, readOnly: boolean, dsync: boolean): StoreFile {
    const fs = this;
    return {
      async write(buf, pos) {
        if (readOnly) throw errno('EBADF', `ino ${ino}`);
        const data = Buffer.from(buf);
        // O_DSYNC reports a failed sync on the write: its bytes went out but are of unknown state.
        const failed = dsync && fs.failSync();
        await inFlight();
        const cur = fs.files.get(ino)!;
        const next = Buffer.alloc(Math.max(cur.length, pos + data.length));
        cur.copy(next);
        data.copy(next, pos);
        fs.files.set(ino, next);
        fs.ops.push({ t: 'write', ino, pos, data, dsync: dsync && !failed });
        if (failed) throw errno('EIO', `dsync write ino ${ino}`);
      },
      async read(buf, pos) {
        const cur = fs.files.get(ino)!;
        if (pos >= cur.length) return 0;
        return cur.copy(buf, 0, pos, Math.min(cur.length, pos + buf.length));
      },
      async datasync() {
        const failed = fs.failSync();
        const skipped = !failed && fs.skip('datasync');
        const coversBefore = fs.ops.length;
        await inFlight();
        if (failed) throw errno('EIO', `datasync ino ${ino}`);
        if (!skipped) fs.ops.push({ t: 'datasync', ino, coversBefore });
      },
      async truncate(len) {
        await inFlight();
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

  /** The root's parent is outside the simulation: it lists the root and nothing else. */
  private isRootParent(dir: string): boolean {
    return dir === (this.split(this.root).dir || '/');
  }

  async readdir(dir: string): Promise<string[]> {
    if (this.isRootParent(dir)) return [this.split(this.root).name];
    return [...(this.dirs.get(dir)?.keys() ?? [])];
  }

  async mkdir(path: string): Promise<void> {
    await inFlight();
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
    const quota = (new Error().stack ?? '').includes('makeRoom');
    await inFlight();
    const { dir, name } = this.split(path);
    const e = this.entry(path);
    if (!e || e.kind !== 'file') throw errno('ENOENT', path);
    this.dirs.get(dir)!.delete(name);
    this.ops.push({ t: 'unlink', dir, name, ino: e.ino, quota });
  }

  async rename(): Promise<void> {
    throw new Error('SimFs: the store does not rename; model it here before using it');
  }

  async syncDir(dir: string): Promise<void> {
    const skipped = this.skip('syncdir');
    const coversBefore = this.ops.length;
    await inFlight();
    if (this.isRootParent(dir)) return;
    if (!this.dirs.has(dir)) throw errno('ENOENT', dir);
    if (!skipped) this.ops.push({ t: 'syncdir', dir, coversBefore });
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
  // A sync makes durable what completed before it was called, whenever it completes (before the cut).
  const fileCovered = new Map<number, number>();
  const dirCovered = new Map<string, number>();
  for (let i = 0; i < cut; i++) {
    const op = fs.ops[i]!;
    if (op.t === 'datasync') fileCovered.set(op.ino, Math.max(fileCovered.get(op.ino) ?? 0, op.coversBefore));
    else if (op.t === 'syncdir') dirCovered.set(op.dir, Math.max(dirCovered.get(op.dir) ?? 0, op.coversBefore));
  }
  const keep = (synced: boolean, p: number) => synced || fate === 'everything' || (fate === 'random' && rand() < p);
  const files = new Map<number, Buffer>(base ? [...base.files].map(([ino, b]) => [ino, Buffer.from(b)]) : []);
  const dirs = new Map<string, Map<string, Entry>>(
    base ? [...base.dirs].map(([d, m]) => [d, new Map(m)]) : [[fs.root, new Map()]],
  );
  for (let i = 0; i < cut; i++) {
    const op = fs.ops[i]!;
    if (op.t === 'write' || op.t === 'truncate') {
      const synced = (op.t === 'write' && op.dsync) || i < (fileCovered.get(op.ino) ?? 0);
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
      const synced = i < (dirCovered.get(op.dir) ?? 0);
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
  out.baseState = {
    dirs: new Map([...out.dirs].map(([d, m]) => [d, new Map(m)])),
    files: new Map([...out.files].map(([i, b]) => [i, Buffer.from(b)])),
  };
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
