import {
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { dirname, join } from 'node:path';
import type { SlotFs } from '../../../firmware/ota/slots.js';

/**
 * A crash-state simulator for the release switch, after the store's: a recording layer around the real SlotFs
 * (the updater's own code runs, on real files) that snapshots the watched directories around every operation,
 * and a model of what a power cut may leave on a file system that promises only what POSIX does:
 *
 * - a directory's entries (create, rename, unlink) are durable once that directory was fsync'ed; until then each
 *   entry may be found with any value it had since that sync (or the one before): renames not yet durable,
 *   operations persisted out of order or not at all, each entry on its own;
 * - a file's contents are durable once the file was fsync'ed; a write cut before its sync leaves the file
 *   empty or with a prefix;
 * - a directory tree (an unpacked release) is whole after a crash only if its root was fsync'ed (the updater
 *   syncs children before parents) before the crash; else it may be missing files.
 *
 * `states(i)` enumerates every state a cut after snapshot i may leave; `materialize` lays one out in a fresh
 * directory for the real launcher to start from.
 */

/** `link:<target>`, `dir:<inode>`, `file:<text>`; a missing entry is ABSENT. */
type Value = string;
const ABSENT = 'absent';
/** A cut's states are the product of each entry's choices; more than this means the model is wrong. */
const CRASH_STATES_MAX = 20_000;

export type CrashState = Map<string, Value>;

interface Snapshot {
  /** The operation just before it (`initial` for the installed state). */
  after: string;
  entries: Map<string, Value>;
  /** Inodes of trees whose root was fsync'ed by then: their contents survive a cut. */
  synced: Set<number>;
}

export class CrashRecorder {
  readonly snapshots: Snapshot[] = [];
  private readonly synced = new Set<number>();

  constructor(
    private readonly inner: SlotFs,
    /** Directories whose entries are modelled, parents before children (the data dir before its ota/). */
    private readonly watched: string[],
  ) {
    this.snap('initial');
  }

  readonly fs: SlotFs = {
    symlink: (target, path) => this.around(`symlink ${target} ${path}`, () => this.inner.symlink(target, path)),
    rename: (from, to) => this.around(`rename ${from} ${to}`, () => this.inner.rename(from, to)),
    rm: (path) => this.around(`rm ${path}`, () => this.inner.rm(path)),
    syncPath: (path) =>
      this.around(`sync ${path}`, async () => {
        await this.inner.syncPath(path);
        if (existsSync(path) && lstatSync(path).isDirectory()) this.synced.add(lstatSync(path).ino);
      }),
    writeFile: (path, data) =>
      this.around(`write ${path}`, async () => {
        // A cut inside the write, before its fsync: the file exists, empty or with a prefix of the data.
        this.snap(`write ${path} (cut before its sync: empty)`, new Map([[path, 'file:']]));
        const half = `file:${data.slice(0, data.length >> 1)}`;
        this.snap(`write ${path} (cut before its sync: half)`, new Map([[path, half]]));
        await this.inner.writeFile(path, data);
      }),
  };

  private async around(name: string, op: () => Promise<void>): Promise<void> {
    // What happened since the last operation (mkdir, tar) is a state of its own.
    this.snap(`before ${name}`);
    await op();
    this.snap(name);
  }

  private snap(after: string, override?: Map<string, Value>): void {
    const entries = new Map<string, Value>();
    for (const dir of this.watched) {
      if (!existsSync(dir)) continue;
      for (const name of readdirSync(dir)) entries.set(join(dir, name), valueOf(join(dir, name)));
    }
    for (const [path, value] of override ?? []) entries.set(path, value);
    this.snapshots.push({ after, entries, synced: new Set(this.synced) });
  }

  /** Every state a power cut right after snapshot `index` may leave. */
  states(index: number): CrashState[] {
    const paths = new Set<string>();
    for (const s of this.snapshots.slice(0, index + 1)) for (const p of s.entries.keys()) paths.add(p);
    const choices: Array<[string, Value[]]> = [];
    for (const path of paths) {
      const parent = dirname(path);
      const settled = this.settledAt(parent, index);
      const seen = new Set<Value>([this.snapshots[settled]!.entries.get(path) ?? ABSENT]);
      for (let j = settled + 1; j <= index; j++) seen.add(this.snapshots[j]!.entries.get(path) ?? ABSENT);
      choices.push([path, [...seen]]);
    }
    let states: CrashState[] = [new Map()];
    for (const [path, values] of choices) {
      states = states.flatMap((s) => values.map((v) => new Map([...s, [path, v]])));
      if (states.length > CRASH_STATES_MAX) throw new Error(`over ${CRASH_STATES_MAX} states after ${index}`);
    }
    // An entry inside a directory whose own entry is lost is lost with it.
    return states.map(
      (s) =>
        new Map(
          [...s].filter(
            ([p]) =>
              !this.watched.includes(dirname(p)) ||
              this.watched.indexOf(dirname(p)) === 0 ||
              s.get(dirname(p)) !== ABSENT,
          ),
        ),
    );
  }

  /** The snapshot whose entries of `dir` were durable at a cut after snapshot `index`: its last fsync by then. */
  private settledAt(dir: string, index: number): number {
    let settled = 0;
    for (let j = 1; j <= index; j++) if (this.snapshots[j]!.after === `sync ${dir}`) settled = j;
    return settled;
  }

  /**
   * Lays `state` out under `root` (whose watched dirs map one to one to `mapTo`): links and files as recorded,
   * a tree whose root was synced by snapshot `index` copied whole from `trees` (by inode), any other one torn.
   */
  materialize(state: CrashState, index: number, mapTo: (path: string) => string, trees: Map<number, string>): void {
    const synced = this.snapshots[index]!.synced;
    for (const [path, value] of [...state].sort(([a], [b]) => a.length - b.length)) {
      if (value === ABSENT) continue;
      const to = mapTo(path);
      mkdirSync(dirname(to), { recursive: true });
      if (value.startsWith('link:')) symlinkSync(value.slice(5), to);
      else if (value.startsWith('file:')) writeFileSync(to, value.slice(5));
      else {
        const ino = Number(value.slice(4));
        const source = trees.get(ino);
        if (source === undefined) mkdirSync(to, { recursive: true });
        else if (synced.has(ino)) cpSync(source, to, { recursive: true, verbatimSymlinks: true });
        // Torn: the folder's entry made it, its files did not.
        else mkdirSync(join(to, 'bin'), { recursive: true });
      }
    }
  }
}

function valueOf(path: string): Value {
  const stat = lstatSync(path);
  if (stat.isSymbolicLink()) return `link:${readlinkSync(path)}`;
  if (stat.isDirectory()) return `dir:${stat.ino}`;
  return `file:${readFileSync(path, 'utf8')}`;
}
