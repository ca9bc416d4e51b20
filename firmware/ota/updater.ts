import type { KeyObject } from 'node:crypto';
import { join } from 'node:path';
import type { SideChannelBroker } from '../side-channel.js';
import { systemClock, type Clock } from '../clock.js';
import { ApplyError, applyRelease } from './apply.js';
import { discardPart } from './download-file.js';
import type { BandwidthShare } from './download-throttle.js';
import { downloadArtifact, type DiskBudget, type DownloadOptions } from './download.js';
import { OtaFetchError } from './fetch-error.js';
import { MANIFEST_BYTES_MAX, ManifestError, parseManifest, verifyManifest, type UpdateManifest } from './manifest.js';
import { readResult } from './pending.js';
import type { ReleaseLayout } from './slots.js';
import { UpdateState, type UpdateStatus } from './state.js';

/**
 * Takes update manifests from the cloud (firmware/ota/source.ts) and drives one update at a time through
 * firmware/ota/state.ts's states: verify the signed manifest, download (resumable), apply (firmware/ota/apply.ts
 * switches the release slot), ask for the restart; after it, report how the switch ended (committed by the new
 * release's health check, or rolled back by the launcher). The latest manifest wins: a new one supersedes the
 * update in progress; the same one again (a retained message or a twin GET at every connect) changes nothing.
 */

export interface UpdaterOptions {
  dataDir: string;
  /** The running release (its release.json): what a manifest must be newer than and built for. */
  running: { version: string; target: string };
  /** The release slots; null where outpost does not run from one (then updates are refused `not-installed`). */
  layout: ReleaseLayout | null;
  /** The trusted ed25519 keys, read at each manifest (rotation needs no restart); a throw refuses it. */
  publicKeys(): KeyObject[];
  healthSecs: number;
  budget: DiskBudget;
  bytesPerSecMax(): number;
  /** The uplink's bucket, shared by the download (DownloadOptions.bandwidth); absent, a bucket of its own. */
  bandwidth?: BandwidthShare;
  /** mqtt uplinks: the broker a manifest's `chunks` are read from; without it the manifest's url is fetched. */
  broker?: SideChannelBroker;
  /** CA bundle for the artifact's host; default Node's roots (a blob SAS URL). */
  ca?: string | Buffer;
  clock?: Clock;
  /** The switch is done: the gateway should stop cleanly so that systemd starts the new release. */
  restart(reason: string): void;
  onError(err: Error): void;
  /** Download limits for tests and the benchmark (backoff, idle timeout, a fake clock's sleep). */
  downloadOverrides?: Partial<Pick<DownloadOptions, 'retryMs' | 'sleep' | 'idleMs' | 'clock'>>;
}

/** After a switch, how often the new release looks for its own commit (written by firmware/ota/health.ts), ms. */
const COMMIT_POLL_MS = 1_000;
/** How long past updateHealthSecs it looks before giving up (the launcher will have rolled back by then), secs. */
const COMMIT_GRACE_SECS = 60;

export class Updater {
  private job: { manifest: UpdateManifest; abort: AbortController; done: Promise<void> } | null = null;
  private stopped = false;
  /** Ends the wait between two looks for the commit at once (stop). */
  private wakeOutcome: (() => void) | null = null;

  private constructor(
    private readonly opts: UpdaterOptions,
    readonly state: UpdateState,
  ) {}

  static async open(opts: UpdaterOptions): Promise<Updater> {
    const state = await UpdateState.open(
      join(opts.dataDir, 'ota'),
      opts.running.version,
      opts.clock ?? systemClock,
      opts.onError,
    );
    return new Updater(opts, state);
  }

  get downloadDir(): string {
    return join(this.opts.dataDir, 'ota', 'download');
  }

  status(): UpdateStatus {
    return this.state.status();
  }

  /**
   * A manifest from `source` (a twin's desired value or a retained payload). Empty (null, '', `{}`) withdraws
   * the update in progress; a bad one is refused, counted and reported, and the update in progress goes on.
   */
  offer(raw: unknown, source: string): void {
    if (this.stopped) return;
    const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : raw;
    if (isEmpty(text)) {
      this.withdraw(source).catch((err: Error) => this.opts.onError(err));
      return;
    }
    let manifest: UpdateManifest;
    try {
      const size = typeof text === 'string' ? Buffer.byteLength(text) : Buffer.byteLength(JSON.stringify(text) ?? '');
      if (size > MANIFEST_BYTES_MAX) {
        throw new ManifestError(source, '(document)', `is over ${MANIFEST_BYTES_MAX} bytes`);
      }
      manifest = parseManifest(text, source);
    } catch (err) {
      this.refuse(null, 'malformed', (err as Error).message).catch((e: Error) => this.opts.onError(e));
      return;
    }
    if (this.job !== null && sameManifest(this.job.manifest, manifest)) return;
    if (this.job === null && this.state.manifest !== null && sameManifest(this.state.manifest, manifest)) return;
    this.start(manifest).catch((err: Error) => this.opts.onError(err));
  }

  /**
   * After start-up: resumes an update that a restart interrupted, or reports how the switch ended. The new
   * release finds its version running and waits for its commit; the old one, rolled back, reads the launcher's
   * result and reports its reason.
   */
  async resume(): Promise<void> {
    const { manifest, phase } = this.state;
    if (manifest === null) return;
    const switched = manifest.version === this.opts.running.version;
    if (phase === 'installing' && switched) await this.state.enter('restarting', manifest);
    if (phase === 'downloading' || phase === 'verifying' || (phase === 'installing' && !switched)) {
      await this.start(manifest);
    } else if (this.state.phase === 'restarting') {
      await this.outcome(manifest, switched);
    }
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.wakeOutcome?.();
    const job = this.job;
    job?.abort.abort();
    await job?.done;
    await this.state.flush();
  }

  private async start(manifest: UpdateManifest): Promise<void> {
    const previous = this.job;
    previous?.abort.abort();
    await previous?.done;
    if (this.stopped) return;
    const abort = new AbortController();
    const job = { manifest, abort, done: Promise.resolve() };
    job.done = this.run(manifest, abort.signal)
      .catch((err: Error) => this.opts.onError(err))
      .finally(() => {
        if (this.job === job) this.job = null;
      });
    this.job = job;
  }

  private async withdraw(source: string): Promise<void> {
    const job = this.job;
    if (job === null) return;
    job.abort.abort();
    await job.done;
    const message = `withdrawn by ${source}`;
    // The part goes first: once the state says idle, nothing of the withdrawn update is left on disk.
    await discardPart(this.downloadDir);
    if (this.state.phase === 'downloading') {
      await this.state.enter('idle', job.manifest, { reason: 'withdrawn', message });
    }
  }

  private async run(manifest: UpdateManifest, signal: AbortSignal): Promise<void> {
    const verdict = this.verify(manifest);
    if (!verdict.ok) return this.refuse(manifest, verdict.reason, verdict.message);
    await this.state.enter('downloading', manifest);
    try {
      const o = this.opts;
      const result = await downloadArtifact({
        artifact: manifest,
        dir: this.downloadDir,
        ca: o.ca,
        budget: o.budget,
        bytesPerSecMax: o.bytesPerSecMax,
        bandwidth: o.bandwidth,
        broker: o.broker,
        clock: o.clock,
        signal,
        ...o.downloadOverrides,
        onProgress: (p) => this.state.progress(p.receivedBytes, p.totalBytes),
        onRetry: (err, waitMs) => {
          o.onError(new Error(`update ${manifest.version}: ${err.message}; again in ${waitMs} ms`));
        },
      });
      await this.state.enter('verifying', manifest);
      const layout = o.layout;
      if (layout === null) {
        return this.refuse(manifest, 'not-installed', 'this outpost does not run from a release slot (install.sh)');
      }
      if (signal.aborted) return;
      await this.state.enter('installing', manifest);
      await applyRelease(result.path, manifest, layout, { healthSecs: o.healthSecs });
      await this.state.enter('restarting', manifest);
      await discardPart(this.downloadDir);
      o.restart(`update to ${manifest.version}`);
    } catch (err) {
      if (err instanceof OtaFetchError && err.code === 'ABORTED') return;
      if (err instanceof OtaFetchError || err instanceof ApplyError) {
        return this.refuse(manifest, err.reason, err.message);
      }
      return this.refuse(manifest, 'io', (err as Error).message);
    }
  }

  private verify(manifest: UpdateManifest): ReturnType<typeof verifyManifest> {
    let keys: KeyObject[];
    try {
      keys = this.opts.publicKeys();
    } catch (err) {
      return { ok: false, reason: 'bad-signature', message: `no trusted keys: ${(err as Error).message}` };
    }
    const { version, target } = this.opts.running;
    return verifyManifest(manifest, keys, { currentVersion: version, target });
  }

  private async refuse(manifest: UpdateManifest | null, reason: string, message: string): Promise<void> {
    this.opts.onError(new Error(`update${manifest ? ` ${manifest.version}` : ''} refused (${reason}): ${message}`));
    await this.state.enter('refused', manifest ?? this.state.manifest, { reason, message });
  }

  /** The switch's outcome, from the launcher's result record; the new release waits for its own commit. */
  private async outcome(manifest: UpdateManifest, switched: boolean): Promise<void> {
    const stateDir = join(this.opts.dataDir, 'ota');
    const deadlineMs = (this.opts.clock ?? systemClock).monoMs() + (this.opts.healthSecs + COMMIT_GRACE_SECS) * 1000;
    for (;;) {
      const result = await readResult(stateDir);
      if (result !== null && result.version === manifest.version) {
        if (result.state === 'committed') return this.state.enter('committed', manifest);
        const why = { reason: result.reason.split(':')[0]!, message: result.reason };
        return this.state.enter('rolled-back', manifest, why);
      }
      if (!switched) {
        const message =
          `the gateway restarted on ${this.opts.running.version}, not ${manifest.version}, and no ` +
          'result was recorded';
        return this.state.enter('rolled-back', manifest, { reason: 'not-started', message });
      }
      if (this.stopped || (this.opts.clock ?? systemClock).monoMs() > deadlineMs) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(() => ((this.wakeOutcome = null), resolve()), COMMIT_POLL_MS);
        this.wakeOutcome = () => (clearTimeout(timer), resolve());
      });
    }
  }
}

function isEmpty(value: unknown): boolean {
  if (value === null || value === undefined || value === '') return true;
  return typeof value === 'object' && !Array.isArray(value) && Object.keys(value as object).length === 0;
}

/** Equal in every field, the URL included: a new SAS URL for the same release restarts the (resuming) fetch. */
function sameManifest(a: UpdateManifest, b: UpdateManifest): boolean {
  return (
    a.version === b.version &&
    a.target === b.target &&
    a.url === b.url &&
    a.sha256 === b.sha256 &&
    a.bytes === b.bytes &&
    a.storeFormat === b.storeFormat &&
    a.signature === b.signature &&
    JSON.stringify(a.chunks ?? null) === JSON.stringify(b.chunks ?? null)
  );
}
