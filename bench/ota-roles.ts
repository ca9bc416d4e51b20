import { createPublicKey } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { downloadArtifact } from '../firmware/ota/download.js';
import { watchUpdateHealth } from '../firmware/ota/health.js';
import type { UpdateManifest } from '../firmware/ota/manifest.js';
import { Updater, type UpdaterOptions } from '../firmware/ota/updater.js';
import { ArtifactServer } from '../test/support/artifact-server.js';
import { FaultProxy } from '../test/support/fault-proxy.js';
import { slotLayout } from '../test/support/ota-release.js';
import { send } from './harness.js';

/**
 * The OTA benchmark's processes: the artifact server behind the throttled fault proxy (its own process, so
 * the 30 MB it serves from memory is not counted against the gateway), and the gateway's two sides: the
 * whole update from manifest to commit, and a bare download cut three times.
 */

export interface OtaBenchArgs {
  dir: string;
  tarball: string;
  manifest: UpdateManifest;
  publicKeyPem: string;
  caCert: string;
  serverCert: string;
  serverKey: string;
  bytesPerSec: number;
  /** Fractions of the artifact at which the link is cut (the `cuts` role asks the parent to cut). */
  cutsAt: number[];
}

/** RSS is sampled this often while the download runs, ms: a 16 KiB chunk arrives every ~16 ms at 1 MB/s. */
const RSS_SAMPLE_MS = 20;
/** The streaming baseline is taken this far into the download, percent: past start-up's one-off growth. */
const STREAMING_FROM_PERCENT = 10;

/**
 * RSS above the level before the manifest (`totalMb`: TLS, the first use of the https module, V8 growing its
 * heap to its working size, the unpack's hashing) and above the level once a tenth of the artifact is in
 * (`streamingMb`: what grows with the artifact, which buffering would show).
 */
function rssSampler(): { streaming(): void; downloaded(): void; stop(): RssFigures } {
  const baseline = process.memoryUsage.rss();
  let streamingBase: number | null = null;
  let downloadedMax: number | null = null;
  let max = baseline;
  const look = () => (max = Math.max(max, process.memoryUsage.rss()));
  const timer = setInterval(look, RSS_SAMPLE_MS);
  return {
    streaming() {
      if (streamingBase === null) streamingBase = look();
    },
    downloaded() {
      if (downloadedMax === null) downloadedMax = look();
    },
    stop() {
      clearInterval(timer);
      const base = streamingBase ?? baseline;
      return { totalMb: (max - baseline) / 2 ** 20, streamingMb: ((downloadedMax ?? look()) - base) / 2 ** 20 };
    },
  };
}

/** `streamingMb` ends with the download; `totalMb` runs on to the switch (the unpack included). */
interface RssFigures {
  totalMb: number;
  streamingMb: number;
}

export async function serveArtifact(a: OtaBenchArgs): Promise<Record<string, unknown>> {
  const server = await ArtifactServer.start({ cert: a.serverCert, key: a.serverKey });
  server.setArtifact(readFileSync(a.tarball));
  const proxy = await FaultProxy.start({ targetPort: server.port });
  proxy.throttle(a.bytesPerSec);
  const stopped = new Promise<void>((resolve) => {
    process.on('message', (msg: { cut?: boolean; stop?: boolean }) => {
      if (msg.cut) proxy.cut();
      if (msg.stop) resolve();
    });
  });
  await send({ proxyPort: proxy.port });
  await stopped;
  await proxy.close();
  await server.close();
  return { requests: server.requests.length, bodyBytesWritten: server.bodyBytesWritten };
}

/** Manifest offered → downloaded, verified, applied → "restart" → the new release's health check commits. */
export async function updateToCommit(a: OtaBenchArgs): Promise<Record<string, unknown>> {
  const dataDir = join(a.dir, 'data');
  const layout = await slotLayout(join(a.dir, 'opt'), dataDir, '1.0.0');
  const publicKey = createPublicKey(a.publicKeyPem);
  const base: Omit<UpdaterOptions, 'running' | 'restart'> = {
    dataDir,
    layout,
    publicKeys: () => [publicKey],
    healthSecs: 120,
    ca: a.caCert,
    bytesPerSecMax: () => 0,
    budget: { downloadBytesMax: 512 * 2 ** 20, reservedBytes: () => 0 },
    onError: () => {},
  };
  let restarted = (): void => {};
  let failed = (_err: Error): void => {};
  const switched = new Promise<void>((resolve, reject) => ((restarted = resolve), (failed = reject)));
  const running = { version: '1.0.0', target: a.manifest.target };
  const first = await Updater.open({ ...base, running, restart: () => restarted() });
  const rss = rssSampler();
  first.state.onChange((s) => {
    if ((s.progress?.percent ?? 0) >= STREAMING_FROM_PERCENT) rss.streaming();
    if (s.state === 'verifying') rss.downloaded();
  });
  first.state.onChange((s) => s.state === 'refused' && failed(new Error(`refused (${s.reason}): ${s.message}`)));
  const startMs = performance.now();
  first.offer(a.manifest, 'bench');
  await switched;
  const { totalMb: updateRssMb, streamingMb: downloadRssMb } = rss.stop();
  await first.stop();
  // What the restarted process does: the new release's updater waits for the commit its health check writes.
  const next = { version: a.manifest.version, target: a.manifest.target };
  const second = await Updater.open({ ...base, running: next, restart: () => {} });
  const outcome = second.resume();
  const health = watchUpdateHealth({
    layout,
    version: a.manifest.version,
    isConnected: () => true,
    log: () => {},
    warn: () => {},
  });
  await health.done;
  await outcome;
  const commitSecs = (performance.now() - startMs) / 1000;
  const state = second.status().state;
  await second.stop();
  return { commitSecs, downloadRssMb, updateRssMb, state };
}

/** A bare download through the proxy, asking the parent to cut the link at each of `cutsAt`. */
export async function downloadWithCuts(a: OtaBenchArgs & { proxyPort: number }): Promise<Record<string, unknown>> {
  const cuts = [...a.cutsAt];
  const url = a.manifest.url.replace(/:\d+\//, `:${a.proxyPort}/`);
  const rss = rssSampler();
  const startMs = performance.now();
  const result = await downloadArtifact({
    artifact: { ...a.manifest, url },
    dir: join(a.dir, 'cuts'),
    ca: a.caCert,
    bytesPerSecMax: () => 0,
    budget: { downloadBytesMax: 512 * 2 ** 20, reservedBytes: () => 0 },
    retryMs: { min: 200, max: 1_000 },
    onProgress: (p) => {
      if (p.receivedBytes * 100 >= STREAMING_FROM_PERCENT * p.totalBytes) rss.streaming();
      if (cuts.length > 0 && p.receivedBytes >= cuts[0]! * p.totalBytes) {
        cuts.shift();
        void send({ cut: true });
      }
    },
  });
  return {
    secs: (performance.now() - startMs) / 1000,
    rssMb: rss.stop().streamingMb,
    attempts: result.attempts,
    overhead: result.fetchedBytes / result.bytes,
  };
}
