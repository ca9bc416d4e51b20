import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Clock } from '../clock.js';
import type { UpdateManifest } from './manifest.js';
import { syncDir } from './download-file.js';

/**
 * Where an update from the cloud stands, one state at a time:
 *
 *   idle → downloading → verifying → installing → restarting → committed | rolled-back
 *   any of the first four → refused (with a reason), or idle (the cloud withdrew the update)
 *
 * A new manifest may start over from any state. The state is kept in `<dataDir>/ota/update-state.json` at
 * every change of state (not of progress: the download keeps its own synced length), so a restart resumes a
 * download, and after the switch's restart the new process (or the old one, rolled back) knows which update
 * it is reporting on. Progress and counters live in memory; the counters start at zero with each process.
 */
export type UpdatePhase =
  'idle' | 'downloading' | 'verifying' | 'installing' | 'restarting' | 'committed' | 'rolled-back' | 'refused';

export interface UpdateProgress {
  receivedBytes: number;
  totalBytes: number;
  percent: number;
}

/** What the twin's reported `outpostUpdate`, the status topic, `outpost status` and the metrics show. */
export interface UpdateStatus {
  state: UpdatePhase;
  /** The version the update is for; null while idle with no update ever seen. */
  version: string | null;
  /** The running release's version. */
  running: string;
  progress: UpdateProgress | null;
  /** Short and stable: a RefusalReason, `sha256`, `disk-budget`, `http-403`, or a rollback's `crash-loop`. */
  reason: string | null;
  /** The same for a person, with the numbers. */
  message: string | null;
  /** Wall time of the last change of state, ms. */
  sinceWallMs: number;
  /** Manifests refused since start, by reason. */
  refusals: Record<string, number>;
}

/** Which state may follow which; anything else is a programmer error. `refused` and `idle` may follow any. */
const NEXT: Record<UpdatePhase, readonly UpdatePhase[]> = {
  idle: ['downloading'],
  downloading: ['downloading', 'verifying'],
  verifying: ['downloading', 'installing'],
  installing: ['downloading', 'restarting'],
  restarting: ['downloading', 'committed', 'rolled-back'],
  committed: ['downloading'],
  'rolled-back': ['downloading'],
  refused: ['downloading'],
};

export const UPDATE_STATE_FILE = 'update-state.json';
const STATE_FORMAT = 1;
/** The document holds one manifest (at most 16 KiB) and a message; anything larger is not ours. */
const STATE_FILE_BYTES_MAX = 64 * 1024;
/** A reason or message from a server or a manifest is cut here: it goes into a twin and a status line. */
const MESSAGE_CHARS_MAX = 300;

interface SavedState {
  state: UpdatePhase;
  manifest: UpdateManifest | null;
  reason: string | null;
  message: string | null;
  sinceWallMs: number;
}

export class UpdateState {
  private saved: SavedState;
  private progressNow: UpdateProgress | null = null;
  private readonly refusals: Record<string, number> = {};
  private readonly listeners = new Set<(status: UpdateStatus, stateChanged: boolean) => void>();
  private writing: Promise<void> = Promise.resolve();

  private constructor(
    private readonly dir: string,
    private readonly running: string,
    private readonly clock: Clock,
    saved: SavedState | null,
  ) {
    this.saved = saved ?? { state: 'idle', manifest: null, reason: null, message: null, sinceWallMs: clock.wallMs() };
  }

  /** Opens the saved state of `dir` (`<dataDir>/ota`); a missing or unreadable file is idle (reported once). */
  static async open(dir: string, running: string, clock: Clock, onError: (err: Error) => void): Promise<UpdateState> {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const path = join(dir, UPDATE_STATE_FILE);
    let saved: SavedState | null = null;
    try {
      const bytes = await readFile(path);
      if (bytes.length > STATE_FILE_BYTES_MAX) throw new Error(`${bytes.length} bytes is not an update state`);
      const doc = JSON.parse(bytes.toString('utf8')) as Partial<SavedState & { format: number }>;
      if (doc.format !== STATE_FORMAT || typeof doc.state !== 'string' || !(doc.state in NEXT)) {
        throw new Error(`not a format ${STATE_FORMAT} update state`);
      }
      saved = {
        state: doc.state,
        manifest: doc.manifest ?? null,
        reason: doc.reason ?? null,
        message: doc.message ?? null,
        sinceWallMs: Number(doc.sinceWallMs) || clock.wallMs(),
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') onError(new Error(`${path}: ${(err as Error).message}`));
    }
    return new UpdateState(dir, running, clock, saved);
  }

  get phase(): UpdatePhase {
    return this.saved.state;
  }

  /** The manifest the state is about (the update in progress or the last one); null when none was seen. */
  get manifest(): UpdateManifest | null {
    return this.saved.manifest;
  }

  /** Listens to every change of state and of progress; returns an unsubscribe. */
  onChange(listener: (status: UpdateStatus, stateChanged: boolean) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  status(): UpdateStatus {
    const s = this.saved;
    return {
      state: s.state,
      version: s.manifest?.version ?? null,
      running: this.running,
      progress: this.progressNow,
      reason: s.reason,
      message: s.message,
      sinceWallMs: s.sinceWallMs,
      refusals: { ...this.refusals },
    };
  }

  /** Moves to `next`; saved before it resolves. Throws on a transition the machine does not have. */
  async enter(
    next: UpdatePhase,
    manifest: UpdateManifest | null,
    why?: { reason: string; message: string },
  ): Promise<void> {
    if (next !== 'refused' && next !== 'idle' && !NEXT[this.saved.state].includes(next)) {
      throw new Error(`update state ${this.saved.state} cannot go to ${next}`);
    }
    const reason = why?.reason ?? 'unknown';
    if (next === 'refused') this.refusals[reason] = (this.refusals[reason] ?? 0) + 1;
    this.saved = {
      state: next,
      manifest,
      reason: why?.reason ?? null,
      message: why === undefined ? null : why.message.slice(0, MESSAGE_CHARS_MAX),
      sinceWallMs: this.clock.wallMs(),
    };
    if (next !== 'downloading') this.progressNow = null;
    const snapshot = this.saved;
    // One failed write (a full disk) must not fail every later one: each waits for the last, whatever it did.
    const write = this.writing.catch(() => {}).then(() => this.save(snapshot));
    this.writing = write;
    await write;
    this.emit(true);
  }

  /** Waits for the state writes in flight (stop, tests); their errors were reported to the caller of enter(). */
  async flush(): Promise<void> {
    await this.writing.catch(() => {});
  }

  /** Download progress: in memory only, passed to the listeners (which decide how often to report it). */
  progress(receivedBytes: number, totalBytes: number): void {
    const percent = totalBytes > 0 ? Math.floor((100 * receivedBytes) / totalBytes) : 0;
    this.progressNow = { receivedBytes, totalBytes, percent };
    this.emit(false);
  }

  private emit(stateChanged: boolean): void {
    const status = this.status();
    for (const listener of this.listeners) listener(status, stateChanged);
  }

  /** Atomic as the settings file: temp, fsync, rename, directory fsync. */
  private async save(doc: SavedState): Promise<void> {
    const temp = join(this.dir, `${UPDATE_STATE_FILE}.tmp`);
    const file = await open(temp, 'w', 0o600);
    try {
      await file.writeFile(JSON.stringify({ format: STATE_FORMAT, ...doc }) + '\n');
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, join(this.dir, UPDATE_STATE_FILE));
    await syncDir(this.dir);
  }
}
