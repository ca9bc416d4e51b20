import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { appendFile, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { ManualClock } from '../../support/manual-clock.js';
import { downloadArtifact, OTA_SYNC_BYTES, type DownloadOptions } from '../../../firmware/ota/download.js';
import { PART_FILE_NAME } from '../../../firmware/ota/download-file.js';
import { OtaFetchError } from '../../../firmware/ota/fetch-error.js';
import { TokenBucket } from '../../../firmware/uplink/rate.js';
import { ArtifactServer } from '../../support/artifact-server.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { createTestCa, type TestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/**
 * The fetch side of an update against a real HTTPS server on loopback (test CA), through the fault proxy
 * where the link must fail: whole downloads, resumption after cuts and after a restart, an artifact that
 * changed under its URL, refusals (hash, size, disk budget, redirects, TLS trust), and the bandwidth cap.
 */

const MiB = 1024 * 1024;
const ARTIFACT_BYTES = 4 * MiB;

let ca: TestCa;
let server: ArtifactServer;
const artifact = randomBytes(ARTIFACT_BYTES);
let sha256 = '';

t.before(async () => {
  ca = await createTestCa();
  server = await ArtifactServer.start(await ca.issue('localhost', ['localhost', '127.0.0.1']));
  sha256 = server.setArtifact(artifact);
});
t.teardown(async () => {
  await server.close();
  await ca.dispose();
});

function options(dir: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    artifact: { url: server.url(), sha256, bytes: ARTIFACT_BYTES },
    dir,
    ca: ca.cert,
    budget: { downloadBytesMax: 64 * MiB, reservedBytes: () => 0 },
    bytesPerSecMax: () => 0,
    retryMs: { min: 10, max: 100 },
    ...extra,
  };
}

async function refusal(t: Test, work: Promise<unknown>, reason: string, text: RegExp): Promise<void> {
  const err = await work.then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(err instanceof OtaFetchError, `refused with an OtaFetchError (${String(err)})`);
  t.equal((err as OtaFetchError).code, 'REFUSED');
  t.equal((err as OtaFetchError).reason, reason);
  t.match((err as Error).message, text);
  t.notMatch((err as Error).message, /sig=secret/, 'the SAS query is not in the message');
}

function sha(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

t.test('a whole download: one GET without Range, the bytes and the hash as served', async (t) => {
  const dir = tempDir(t);
  const before = server.requests.length;
  const result = await downloadArtifact(options(dir));
  t.equal(result.bytes, ARTIFACT_BYTES);
  t.equal(result.fetchedBytes, ARTIFACT_BYTES);
  t.equal(sha(await readFile(result.path)), sha256);
  t.same(
    server.requests.slice(before).map((r) => [r.range, r.status]),
    [[null, 200]],
  );
});

t.test('three cuts mid-transfer: each attempt resumes with Range and If-Range, within 5% of the size', async (t) => {
  const dir = tempDir(t);
  const proxy = await FaultProxy.start({ targetPort: server.port });
  t.teardown(() => proxy.close());
  // Slow enough that the rest is not already in the socket buffers (where a cut cannot reach it) at a cut.
  proxy.throttle(4 * MiB);
  const cutsAt = [ARTIFACT_BYTES / 4, ARTIFACT_BYTES / 2, (3 * ARTIFACT_BYTES) / 4];
  const retries: string[] = [];
  const before = server.requests.length;
  const result = await downloadArtifact(
    options(dir, {
      artifact: { url: server.url(undefined, proxy.port), sha256, bytes: ARTIFACT_BYTES },
      onProgress: (p) => {
        if (cutsAt.length > 0 && p.receivedBytes >= cutsAt[0]!) {
          cutsAt.shift();
          proxy.cut();
        }
      },
      onRetry: (err) => retries.push(err.reason),
    }),
  );
  t.equal(retries.length, 3, `three retries (${retries.join(', ')})`);
  t.equal(sha(await readFile(result.path)), sha256);
  const served = server.requests.slice(before);
  t.equal(served.length, 4);
  t.same(served[0], { path: '/outpost.tar.gz', range: null, ifRange: null, status: 200 });
  for (const r of served.slice(1)) {
    t.match(r.range, /^bytes=\d+-$/);
    t.match(r.ifRange, /^"0x/, 'the strong ETag goes in If-Range');
    t.equal(r.status, 206);
  }
  t.ok(result.fetchedBytes / ARTIFACT_BYTES <= 1.05, `fetched ${result.fetchedBytes} for ${ARTIFACT_BYTES}`);
});

t.test('a restart resumes from the synced length; a torn tail after a power cut is cut off', async (t) => {
  const dir = tempDir(t);
  const stop = new AbortController();
  const first = downloadArtifact(
    options(dir, {
      signal: stop.signal,
      onProgress: (p) => p.receivedBytes >= 2.5 * MiB && stop.abort(),
    }),
  );
  const err = await first.then(
    () => null,
    (e: unknown) => e,
  );
  t.equal((err as OtaFetchError).code, 'ABORTED');
  // What a power cut can leave: the file longer than its synced part, the extra bytes garbage.
  await appendFile(path.join(dir, PART_FILE_NAME), randomBytes(100_000));
  const partBytes = (await stat(path.join(dir, PART_FILE_NAME))).size;
  const before = server.requests.length;
  const result = await downloadArtifact(options(dir));
  const resumed = server.requests.slice(before);
  t.equal(resumed.length, 1);
  const start = Number(/^bytes=(\d+)-$/.exec(resumed[0]!.range ?? '')?.[1]);
  t.ok(start >= 2 * OTA_SYNC_BYTES && start < partBytes, `resumed at ${start} (file was ${partBytes})`);
  t.equal(resumed[0]!.status, 206);
  t.equal(result.fetchedBytes, ARTIFACT_BYTES - start, 'only the rest was fetched');
  t.equal(sha(await readFile(result.path)), sha256);
});

t.test('an artifact changed under its URL is fetched from zero, then judged by the manifest hash', async (t) => {
  for (const ifRange of [true, false]) {
    const dir = tempDir(t);
    const changing = await ArtifactServer.start(await ca.issue('localhost', ['localhost']), { ifRange });
    const v1 = randomBytes(2 * MiB);
    const v2 = randomBytes(2 * MiB);
    const v1sha = changing.setArtifact(v1);
    const stop = new AbortController();
    const retries: string[] = [];
    const base = options(dir, {
      artifact: { url: changing.url(), sha256: v1sha, bytes: v1.length },
      onRetry: (e) => retries.push(e.reason),
    });
    const onProgress = (p: { receivedBytes: number }) => p.receivedBytes >= 1.5 * MiB && stop.abort();
    const first = await downloadArtifact({ ...base, signal: stop.signal, onProgress }).then(
      () => null,
      (e: unknown) => e,
    );
    t.equal((first as OtaFetchError).code, 'ABORTED');
    changing.setArtifact(v2);
    const label = ifRange ? 'If-Range honoured (200)' : 'If-Range ignored (206 of the new ETag)';
    await refusal(t, downloadArtifact(base), 'sha256', new RegExp(`the manifest says ${v1sha}`));
    const statuses = changing.requests.slice(1).map((r) => r.status);
    t.same(statuses, ifRange ? [200] : [206, 200], `${label}: ${statuses.join(', ')}`);
    t.same(retries, ifRange ? [] : ['changed'], 'a range of another ETag is not appended');
    await t.rejects(stat(path.join(dir, PART_FILE_NAME)), { code: 'ENOENT' }, 'the refused artifact is deleted');
    await changing.close();
  }
});

t.test('refusals: wrong hash, wrong size, over the budget, no room beside the log quota', async (t) => {
  const dir = tempDir(t);
  const wrong = 'ab'.repeat(32);
  const url = server.url();
  await refusal(
    t,
    downloadArtifact(options(dir, { artifact: { url, sha256: wrong, bytes: ARTIFACT_BYTES } })),
    'sha256',
    /sha256 of the downloaded artifact is [0-9a-f]{64}/,
  );
  await refusal(
    t,
    downloadArtifact(options(dir, { artifact: { url, sha256, bytes: ARTIFACT_BYTES - 1 } })),
    'size',
    /is 4194304 bytes, the manifest says 4194303/,
  );
  const before = server.requests.length;
  await refusal(
    t,
    downloadArtifact(options(dir, { budget: { downloadBytesMax: MiB, reservedBytes: () => 0 } })),
    'disk-budget',
    /over ota.downloadBytesMax \(1048576\)/,
  );
  await refusal(
    t,
    downloadArtifact(
      options(dir, {
        budget: { downloadBytesMax: 64 * MiB, reservedBytes: () => 500 * MiB, freeBytes: async () => 512 * MiB },
      }),
    ),
    'disk-budget',
    /the ring log's unused quota \(524288000\)/,
  );
  t.equal(server.requests.length, before, 'nothing was fetched for a download that cannot fit');
});

t.test('redirects: followed up to the limit, never to http; a 403 refuses, a 503 is retried', async (t) => {
  const dir = tempDir(t);
  const at = (name: string) => ({ url: server.url(name), sha256, bytes: ARTIFACT_BYTES });
  const ok = await downloadArtifact(options(dir, { artifact: at('hop/4/outpost.tar.gz') }));
  t.equal(sha(await readFile(ok.path)), sha256, 'five redirects are followed');
  const via = (name: string) => downloadArtifact(options(tempDir(t), { artifact: at(name) }));
  await refusal(t, via('hop/5/outpost.tar.gz'), 'http-redirect', /more than 5/);
  server.redirectTo = (location) => `http://localhost:${server.port}${location}`;
  t.teardown(() => void (server.redirectTo = (location) => location));
  await refusal(t, via('hop/0/outpost.tar.gz'), 'http-redirect', /http: refused/);
  server.redirectTo = (location) => location;
  server.failNext.push(403);
  await refusal(t, downloadArtifact(options(tempDir(t))), 'http-403', /answered 403/);
  server.failNext.push(503, 503);
  const retries: string[] = [];
  await downloadArtifact(options(tempDir(t), { onRetry: (e) => retries.push(e.reason) }));
  t.same(retries, ['http-503', 'http-503']);
});

t.test('a server the configured CA did not sign is refused, not retried', async (t) => {
  const other = await createTestCa();
  t.teardown(() => other.dispose());
  await refusal(t, downloadArtifact(options(tempDir(t), { ca: other.cert })), 'tls', /outpost.tar.gz/);
});

t.test('the bandwidth cap holds over every window of the fake clock', async (t) => {
  const clock = new ManualClock();
  const rate = 256 * 1024;
  const startMs = clock.monoMs();
  const samples: Array<{ atMs: number; bytes: number }> = [];
  const result = await downloadArtifact(
    options(tempDir(t), {
      clock,
      sleep: async (ms) => clock.advance(ms),
      bytesPerSecMax: () => rate,
      onProgress: (p) => samples.push({ atMs: clock.monoMs() - startMs, bytes: p.receivedBytes }),
    }),
  );
  t.equal(result.bytes, ARTIFACT_BYTES);
  const chunkMax = Math.max(...samples.map((s, i) => s.bytes - (samples[i - 1]?.bytes ?? 0)));
  const burst = rate * TokenBucket.BURST_SECS;
  for (const s of samples) {
    if (s.bytes > (rate * s.atMs) / 1000 + burst + chunkMax) t.fail(`${s.bytes} B by ${s.atMs} ms is over the cap`);
  }
  const elapsedMs = samples.at(-1)!.atMs;
  const floorMs = ((ARTIFACT_BYTES - burst - chunkMax) * 1000) / rate;
  t.ok(elapsedMs >= floorMs, `took ${elapsedMs} ms of fake time, at least ${Math.round(floorMs)}`);
  t.ok(elapsedMs <= (ARTIFACT_BYTES * 1000) / rate + 1_000, `took ${elapsedMs} ms, not far over size / rate`);
});

t.test('a black-holed link times out by its idle limit and resumes when it returns', async (t) => {
  const proxy = await FaultProxy.start({ targetPort: server.port });
  t.teardown(() => proxy.close());
  // Slow enough that the kernel's socket buffers do not already hold the rest when the hole opens.
  proxy.throttle(4 * MiB);
  let holed = false;
  const retries: string[] = [];
  const result = await downloadArtifact(
    options(tempDir(t), {
      artifact: { url: server.url(undefined, proxy.port), sha256, bytes: ARTIFACT_BYTES },
      idleMs: 1_000,
      onProgress: (p) => {
        if (!holed && p.receivedBytes >= MiB / 4) {
          holed = true;
          proxy.blackhole();
        }
      },
      onRetry: (err) => {
        retries.push(err.reason);
        proxy.pass();
      },
    }),
  );
  // A loaded machine may stall the new connection past the idle limit too; each stall is the same timeout.
  const onlyTimeouts = retries.length >= 1 && retries.every((r) => r === 'timeout');
  t.ok(onlyTimeouts, `retried on timeouts only (${retries.join(', ')})`);
  t.equal(sha(await readFile(result.path)), sha256);
});
