import { statfs } from 'node:fs/promises';
import { setTimeout as sleepMs } from 'node:timers/promises';
import { systemClock, type Clock } from '../clock.js';
import type { SideChannelBroker } from '../side-channel.js';
import type { ChunkSource } from './chunks.js';
import { readChunks } from './download-mqtt.js';
import { DownloadThrottle, type BandwidthShare } from './download-throttle.js';
import { discardPart, loadPartRecord, PartFile, savePartRecord, type PartRecord } from './download-file.js';
import { asTransient, redact, requestRange, type RangeResponse } from './download-http.js';
import { OtaFetchError } from './fetch-error.js';

/**
 * Fetches a release tarball to `<dataDir>/ota/artifact.part`: streamed to the file chunk by chunk (never held
 * in memory), sha256 computed as it arrives, resumed with Range requests after a link cut (in memory) or a
 * restart (from the synced length on disk) — or, over MQTT, read from retained chunks and resumed by chunk
 * index (firmware/ota/download-mqtt.ts) — held to the uplink's bandwidth cap, and bounded by a disk budget
 * that leaves the ring log its whole quota. A cut link is retried with a capped backoff for as long as the
 * update stands: a gateway may be offline for days and should carry on where it stopped.
 */

export interface ArtifactRef {
  /** https only; a query string (SAS token) is never logged. */
  url: string;
  /** Hex sha256 of the whole artifact, from the signed manifest. */
  sha256: string;
  bytes: number;
  /** Retained chunks at the uplink's broker (firmware/ota/chunks.ts): used instead of `url` when a broker is given. */
  chunks?: ChunkSource;
}

export interface DiskBudget {
  /** Largest artifact taken at all, bytes (board.json `ota.downloadBytesMax`). */
  downloadBytesMax: number;
  /** What the ring log may still grow by before its quota is full, bytes: never given to a download. */
  reservedBytes(): number;
  /** Free bytes for an unprivileged writer on the file system of `dir`; default statfs. */
  freeBytes?(dir: string): Promise<number>;
}

export interface DownloadProgress {
  receivedBytes: number;
  totalBytes: number;
  /** Body bytes received over the network so far, across attempts: more than received when a range was lost. */
  fetchedBytes: number;
  attempts: number;
}

export interface DownloadOptions {
  artifact: ArtifactRef;
  /** The data directory's ota folder. */
  dir: string;
  /** CA bundle to trust for the artifact's host; default Node's roots. */
  ca?: string | Buffer;
  budget: DiskBudget;
  /** mqtt uplinks: the broker the artifact's chunks are read from (the uplink's, with its login). */
  broker?: SideChannelBroker;
  /** The uplink's cap in force, read per chunk (the cloud may change it mid-download); 0 is no cap. */
  bytesPerSecMax(): number;
  /**
   * The uplink's own bucket: when given, the download takes from it (in OTA_THROTTLE_SLICE_BYTES pieces)
   * instead of a bucket of its own at `bytesPerSecMax()`, so the update and the backlog share one cap.
   */
  bandwidth?: BandwidthShare;
  clock?: Clock;
  /** Waits `ms` (throttle, backoff); rejects on `signal`. Tests pass one that moves a ManualClock. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  onProgress?(progress: DownloadProgress): void;
  onRetry?(err: OtaFetchError, waitMs: number): void;
  signal?: AbortSignal;
  /** Socket idle timeout, ms (default OTA_SOCKET_IDLE_MS). */
  idleMs?: number;
  /** Backoff between failed attempts, ms: doubled from `min` to `max`, back to `min` after any progress. */
  retryMs?: { min: number; max: number };
}

export interface DownloadResult {
  path: string;
  bytes: number;
  fetchedBytes: number;
  attempts: number;
}

/** Bytes between syncs of the part file (and its record): what a power cut can make a restart fetch again. */
export const OTA_SYNC_BYTES = 1024 * 1024;
/** Free space kept beyond the artifact and the log's reserve, bytes: the journal and the OS need room too. */
export const OTA_DISK_MARGIN_BYTES = 16 * 1024 * 1024;
/** Backoff between attempts, ms: quick for a blip, a few minutes at most for a link down for hours. */
export const OTA_RETRY_MS_MIN = 1_000;
export const OTA_RETRY_MS_MAX = 5 * 60_000;

async function statfsFreeBytes(dir: string): Promise<number> {
  const s = await statfs(dir);
  return s.bavail * s.bsize;
}

async function defaultSleep(ms: number, signal?: AbortSignal): Promise<void> {
  await sleepMs(ms, undefined, { signal });
}

export async function downloadArtifact(opts: DownloadOptions): Promise<DownloadResult> {
  const { artifact, budget } = opts;
  if (artifact.bytes > budget.downloadBytesMax) {
    throw new OtaFetchError(
      'REFUSED',
      'disk-budget',
      `the artifact's ${artifact.bytes} bytes are over ` + `ota.downloadBytesMax (${budget.downloadBytesMax})`,
    );
  }
  let record = await loadPartRecord(opts.dir);
  if (record !== null && (record.sha256 !== artifact.sha256 || record.bytes !== artifact.bytes)) {
    await discardPart(opts.dir);
    record = null;
  }
  const part = await PartFile.open(opts.dir, record?.durableBytes ?? 0);
  const run = new DownloadRun(opts, part, record);
  try {
    const result = await run.loop();
    await part.close();
    return result;
  } catch (err) {
    await part.close().catch(() => {});
    if (err instanceof OtaFetchError && err.code === 'REFUSED') await discardPart(opts.dir).catch(() => {});
    throw err;
  }
}

class DownloadRun {
  private readonly clock: Clock;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;
  private readonly throttle: DownloadThrottle;
  private etag: string | null;
  private lastModified: string | null;
  private durableBytes: number;
  private fetchedBytes = 0;
  private attempts = 0;
  /** The first attempt continued bytes from an earlier run or attempt: a bad digest then earns one fresh try. */
  private resumed: boolean;

  constructor(
    private readonly opts: DownloadOptions,
    private readonly part: PartFile,
    record: PartRecord | null,
  ) {
    this.clock = opts.clock ?? systemClock;
    this.sleep = opts.sleep ?? defaultSleep;
    this.throttle = new DownloadThrottle(opts.bytesPerSecMax, opts.bandwidth, this.clock, this.sleep, opts.signal);
    this.etag = record?.etag ?? null;
    this.lastModified = record?.lastModified ?? null;
    this.durableBytes = part.length;
    this.resumed = part.length > 0;
  }

  async loop(): Promise<DownloadResult> {
    const retry = this.opts.retryMs ?? { min: OTA_RETRY_MS_MIN, max: OTA_RETRY_MS_MAX };
    let waitMs = retry.min;
    for (;;) {
      if (this.part.length === this.opts.artifact.bytes) {
        if (await this.verified()) return this.result();
        continue;
      }
      const before = this.part.length;
      try {
        await this.checkSpace();
        await this.attempt();
      } catch (err) {
        // A stop while the body flows surfaces as the socket's reset, not as an AbortError.
        const e = this.opts.signal?.aborted
          ? new OtaFetchError('ABORTED', 'stopped', 'download stopped', { cause: err })
          : asTransient(err, this.opts.artifact.url);
        await this.saveProgress();
        if (e.code !== 'TRANSIENT') throw e;
        if (this.part.length > before) waitMs = retry.min;
        this.opts.onRetry?.(e, waitMs);
        await this.sleep(waitMs, this.opts.signal).catch((abort: unknown) => {
          throw asTransient(abort, this.opts.artifact.url);
        });
        waitMs = Math.min(retry.max, waitMs * 2);
      }
    }
  }

  /** The whole artifact is on disk: its digest decides. A resumed one that fails is fetched once more from zero. */
  private async verified(): Promise<boolean> {
    const digest = this.part.digest();
    if (digest === this.opts.artifact.sha256.toLowerCase()) {
      await this.saveProgress();
      return true;
    }
    if (!this.resumed) {
      throw new OtaFetchError(
        'REFUSED',
        'sha256',
        `sha256 of the downloaded artifact is ${digest}, the manifest ` + `says ${this.opts.artifact.sha256}`,
      );
    }
    this.resumed = false;
    await this.restartFromZero();
    return false;
  }

  private async checkSpace(): Promise<void> {
    const free = await (this.opts.budget.freeBytes ?? statfsFreeBytes)(this.opts.dir);
    const reserved = Math.max(0, this.opts.budget.reservedBytes());
    const needed = this.opts.artifact.bytes - this.part.length + reserved + OTA_DISK_MARGIN_BYTES;
    if (free < needed) {
      throw new OtaFetchError(
        'REFUSED',
        'disk-budget',
        `${this.opts.dir} has ${free} bytes free; the rest of the ` +
          `artifact, the ring log's unused quota (${reserved}) and a ${OTA_DISK_MARGIN_BYTES}-byte margin need ` +
          `${needed}`,
      );
    }
  }

  private async attempt(): Promise<void> {
    this.attempts += 1;
    const { artifact, broker } = this.opts;
    if (artifact.chunks !== undefined && broker !== undefined) {
      const chunks = readChunks({
        broker,
        chunks: artifact.chunks,
        bytes: artifact.bytes,
        from: this.part.length,
        signal: this.opts.signal,
        waitMs: this.opts.idleMs,
      });
      for await (const chunk of chunks) await this.take(chunk);
      return;
    }
    const res = await requestRange({
      url: artifact.url,
      start: this.part.length,
      validator: this.validator(),
      ca: this.opts.ca,
      signal: this.opts.signal,
      idleMs: this.opts.idleMs,
    });
    try {
      await this.accept(res);
      for await (const chunk of res.body as AsyncIterable<Buffer>) await this.take(chunk);
    } finally {
      res.body.destroy();
    }
    if (this.part.length < artifact.bytes) {
      throw new OtaFetchError(
        'TRANSIENT',
        'truncated',
        `${redact(artifact.url)} ended at byte ${this.part.length} ` + `of ${artifact.bytes}`,
      );
    }
  }

  /** Decides whether the response continues the bytes held, replaces them, or cannot be used. */
  private async accept(res: RangeResponse): Promise<void> {
    const { artifact } = this.opts;
    const total = res.status === 200 ? res.bodyBytes : res.totalBytes;
    if (total !== null && total !== artifact.bytes) {
      const what = `${redact(artifact.url)} is ${total} bytes, the manifest says ${artifact.bytes}`;
      throw new OtaFetchError('REFUSED', 'size', what);
    }
    const changed = res.status === 206 && this.etag !== null && res.etag !== null && res.etag !== this.etag;
    if (res.status === 200 && this.part.length > 0) await this.restartFromZero();
    else if (changed || (res.status === 206 && res.rangeStart !== this.part.length)) {
      // The range is of another artifact, or starts elsewhere: nothing of it can be used.
      await this.restartFromZero();
      const what = `${redact(artifact.url)} changed since the bytes held were fetched`;
      throw new OtaFetchError('TRANSIENT', 'changed', what);
    }
    if (res.status === 206 && this.part.length > 0) this.resumed = true;
    this.etag = res.etag;
    this.lastModified = res.lastModified;
    await this.saveProgress();
  }

  private async take(chunk: Buffer): Promise<void> {
    const { artifact } = this.opts;
    this.fetchedBytes += chunk.length;
    if (this.part.length + chunk.length > artifact.bytes) {
      const what = `${redact(artifact.url)} sent more than the manifest's ${artifact.bytes} bytes`;
      throw new OtaFetchError('REFUSED', 'size', what);
    }
    await this.throttle.wait(chunk.length);
    await this.part.append(chunk);
    if (this.part.length - this.durableBytes >= OTA_SYNC_BYTES) await this.saveProgress();
    this.opts.onProgress?.({
      receivedBytes: this.part.length,
      totalBytes: artifact.bytes,
      fetchedBytes: this.fetchedBytes,
      attempts: this.attempts,
    });
  }

  /** Only a strong ETag proves the bytes are the same (RFC 9110 §8.8.3.2); else the date, else nothing. */
  private validator(): string | null {
    if (this.etag !== null && !this.etag.startsWith('W/')) return this.etag;
    return this.lastModified;
  }

  private async restartFromZero(): Promise<void> {
    await this.part.reset();
    this.resumed = false;
    this.etag = null;
    this.lastModified = null;
    this.durableBytes = 0;
    await this.saveProgress();
  }

  private async saveProgress(): Promise<void> {
    this.durableBytes = await this.part.sync();
    const { sha256, bytes } = this.opts.artifact;
    await savePartRecord(this.opts.dir, {
      sha256,
      bytes,
      durableBytes: this.durableBytes,
      etag: this.etag,
      lastModified: this.lastModified,
    });
  }

  private result(): DownloadResult {
    return { path: this.part.path, bytes: this.part.length, fetchedBytes: this.fetchedBytes, attempts: this.attempts };
  }
}
