import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildRelease, signedManifest, signingKey } from '../test/support/ota-release.js';
import { createTestCa } from '../test/support/tls-certs.js';
import { envInt, fmt, formatTable, freshDir, median, removeDir, runChild, type BenchModule } from './harness.js';
import { downloadWithCuts, serveArtifact, updateToCommit, type OtaBenchArgs } from './ota-roles.js';

/**
 * `npm run bench -- ota`: an update of a ~30 MB release (OTA_BENCH_MB) over loopback held to 1 MB/s by the
 * fault proxy (OTA_BENCH_BYTES_PER_SEC), the server in a process of its own.
 *
 * - commitSecs: manifest offered → downloaded, verified, unpacked, slot switched → the new release's updater
 *   sees the commit its health check writes (firmware/ota/health.ts). The restart itself is not a process
 *   here: the second updater opens the same data dir, as the restarted gateway does.
 * - resumeOverhead: bytes fetched / artifact size for a download cut at 25, 50 and 75 %, against curl
 *   `-C -` (rerun after each cut, the usual resumable download) on the same link and cuts. Target ≤ 1.05.
 * - downloadRssMb: the updater process's RSS growth from a tenth of the download to its end, sampled every
 *   20 ms (target ≤ 8 MB: the tarball is streamed to disk, never held); updateRssMb: the growth from before
 *   the manifest to the switch (start-up's one-off costs and the unpack included).
 *
 * Medians over OTA_BENCH_RUNS runs (default 1: a run costs a minute of link time at 1 MB/s).
 */

const MiB = 2 ** 20;
/** Attempts curl gets before the peer run counts as failed (3 cuts need 4). */
const CURL_ATTEMPTS_MAX = 20;
/** How often the curl peer's output file is looked at for the cut points, ms. */
const CURL_POLL_MS = 10;

async function curlWithCuts(
  a: OtaBenchArgs,
  url: string,
  caFile: string,
  server: ChildProcess,
): Promise<{ overhead: number; secs: number; rssMb: number }> {
  const out = join(a.dir, 'curl.out');
  const cuts = [...a.cutsAt];
  let fetched = 0;
  let peakRssMb = 0;
  const startMs = performance.now();
  for (let attempt = 1; attempt <= CURL_ATTEMPTS_MAX; attempt += 1) {
    const curlArgs = ['-sS', '--cacert', caFile, '-C', '-', '-o', out, '-w', '%{size_download}', url];
    const curl = spawn('curl', curlArgs, { stdio: ['ignore', 'pipe', 'ignore'] });
    let written = '';
    curl.stdout.on('data', (d: Buffer) => (written += d.toString()));
    const poll = setInterval(() => {
      const size = statSizeOrZero(out);
      peakRssMb = Math.max(peakRssMb, peakRssMbOf(curl.pid ?? -1));
      if (cuts.length > 0 && size >= cuts[0]! * a.manifest.bytes) {
        cuts.shift();
        server.send({ cut: true });
      }
    }, CURL_POLL_MS);
    const code = await new Promise<number | null>((resolve) => curl.on('exit', resolve));
    clearInterval(poll);
    fetched += Number(written) || 0;
    if (code === 0 && statSizeOrZero(out) === a.manifest.bytes) {
      return { overhead: fetched / a.manifest.bytes, secs: (performance.now() - startMs) / 1000, rssMb: peakRssMb };
    }
  }
  throw new Error(`curl did not finish in ${CURL_ATTEMPTS_MAX} attempts`);
}

/** VmHWM of another process, MiB; 0 once it is gone. */
function peakRssMbOf(pid: number): number {
  try {
    return Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  } catch {
    return 0;
  }
}

function statSizeOrZero(path: string): number {
  try {
    return statSync(path).size;
  } catch {
    return 0;
  }
}

async function oneRun(args: Omit<OtaBenchArgs, 'dir'>, caFile: string): Promise<Record<string, number>> {
  const dir = await freshDir('ota');
  let server: ChildProcess | null = null;
  let ready = (_port: number): void => {};
  const listening = new Promise<number>((resolve) => (ready = resolve));
  const serving = runChild(
    'ota',
    'server',
    { ...args, dir },
    {
      onMessage: (msg, child) => {
        server = child;
        if (typeof msg.proxyPort === 'number') ready(msg.proxyPort);
      },
    },
  );
  try {
    const proxyPort = await listening;
    const url = args.manifest.url.replace(/:\d+\//, `:${proxyPort}/`);
    const manifest = { ...args.manifest, url };
    const a: OtaBenchArgs = { ...args, dir, manifest };
    const commit = await runChild('ota', 'update', { ...a, dir: join(dir, 'update') });
    const cut = await runChild(
      'ota',
      'cuts',
      { ...a, dir: join(dir, 'cuts'), proxyPort },
      {
        onMessage: (msg) => msg.cut && server?.send({ cut: true }),
      },
    );
    const curl = await curlWithCuts(a, url, caFile, server!);
    return {
      commitSecs: Number(commit.commitSecs),
      downloadRssMb: Number(commit.downloadRssMb),
      updateRssMb: Number(commit.updateRssMb),
      committed: commit.state === 'committed' ? 1 : 0,
      resumeOverhead: Number(cut.overhead),
      cutSecs: Number(cut.secs),
      cutRssMb: Number(cut.rssMb),
      curlOverhead: curl.overhead,
      curlSecs: curl.secs,
      curlRssMb: curl.rssMb,
    };
  } finally {
    (server as ChildProcess | null)?.send({ stop: true });
    await serving.catch(() => {});
    await removeDir(dir);
  }
}

async function run(): Promise<void> {
  const artifactMb = envInt('OTA_BENCH_MB', 30);
  const bytesPerSec = envInt('OTA_BENCH_BYTES_PER_SEC', 1_000_000);
  const runs = envInt('OTA_BENCH_RUNS', 1);
  const work = await freshDir('ota-release');
  const ca = await createTestCa();
  try {
    const release = await buildRelease(work, '1.1.0', artifactMb * 1_000_000);
    const key = signingKey();
    const serverPair = await ca.issue('localhost', ['localhost']);
    const caFile = join(work, 'ca.pem');
    writeFileSync(caFile, ca.cert);
    const args = {
      tarball: release.tarball,
      manifest: signedManifest(key, '1.1.0', release, 'https://localhost:1/outpost.tar.gz'),
      publicKeyPem: key.publicKey.export({ type: 'spki', format: 'pem' }).toString(),
      caCert: ca.cert,
      serverCert: serverPair.cert,
      serverKey: serverPair.key,
      bytesPerSec,
      cutsAt: [0.25, 0.5, 0.75],
    };
    const results: Array<Record<string, number>> = [];
    for (let i = 0; i < runs; i += 1) results.push(await oneRun(args, caFile));
    const m = (name: string) => median(results.map((r) => r[name]!));
    const size = fmt(release.bytes / MiB, 1);
    console.log(`ota: ${size} MiB release over loopback at ${fmt(bytesPerSec)} B/s, ${runs} run(s), medians`);
    console.log(
      formatTable(
        ['', 'secs', 'bytes fetched / size', 'extra RSS MiB'],
        [
          [
            'outpost: manifest → committed',
            fmt(m('commitSecs'), 1),
            '',
            `${fmt(m('downloadRssMb'), 1)} downloading, ${fmt(m('updateRssMb'), 1)} to the switch`,
          ],
          ['outpost: download, 3 cuts', fmt(m('cutSecs'), 1), fmt(m('resumeOverhead'), 3), fmt(m('cutRssMb'), 1)],
          [
            'curl -C -: download, 3 cuts',
            fmt(m('curlSecs'), 1),
            fmt(m('curlOverhead'), 3),
            `${fmt(m('curlRssMb'), 1)} (peak)`,
          ],
        ],
      ),
    );
    console.log(
      JSON.stringify({
        resumeOverhead: round(m('resumeOverhead'), 3),
        downloadRssMb: round(m('downloadRssMb'), 1),
        updateRssMb: round(m('updateRssMb'), 1),
        commitSecs: round(m('commitSecs'), 1),
        committed: m('committed') === 1,
        curlResumeOverhead: round(m('curlOverhead'), 3),
        artifactBytes: release.bytes,
        bytesPerSec,
        runs,
      }),
    );
  } finally {
    await ca.dispose();
    await removeDir(work);
  }
}

function round(n: number, digits: number): number {
  return Number(n.toFixed(digits));
}

const ota: BenchModule = {
  run,
  child: async (role, args) => {
    const a = args as unknown as OtaBenchArgs & { proxyPort: number };
    if (role === 'server') return serveArtifact(a);
    if (role === 'update') return updateToCommit(a);
    if (role === 'cuts') return downloadWithCuts(a);
    throw new Error(`ota bench has no child role "${role}"`);
  },
};
export default ota;
