import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { PART_FILE_NAME, savePartRecord } from '../../../firmware/ota/download-file.js';
import { chunkTopic, type ChunkSource } from '../../../firmware/ota/chunks.js';
import { downloadArtifact, type DownloadOptions } from '../../../firmware/ota/download.js';
import { OtaFetchError } from '../../../firmware/ota/fetch-error.js';
import { parseManifest } from '../../../firmware/ota/manifest.js';
import { Mosquitto } from '../../support/brokers.js';
import {
  buildRelease,
  signedManifest,
  signingKey,
  slotLayout,
  TEST_TARGET,
  type BuiltRelease,
} from '../../support/ota-release.js';
import { slotVersion } from '../../../firmware/ota/slots.js';
import { Updater } from '../../../firmware/ota/updater.js';
import { tempDir } from '../../support/tmp.js';

/**
 * The artifact in chunks over MQTT, against real mosquitto: a real release tarball split and published the way
 * an operator does it (`mosquitto_pub -r -q 1 -f`), read back by chunk index, resumed after a broker restart
 * and after the gateway's own restart (mid-chunk), judged by the manifest's sha256, and refused when a chunk
 * is not the size the manifest says.
 */

const run = promisify(execFile);
/** Not a divisor of the part file's 1 MiB sync step: a restart resumes in the middle of a chunk. */
const CHUNK_BYTES = 48 * 1024;
const TOPIC = 'outpost/gw-ota/update/chunk';

let broker: Mosquitto;
let release: BuiltRelease;
let tarball: Buffer;
let chunks: ChunkSource;
let work: string;

t.before(async () => {
  broker = await Mosquitto.start();
  work = path.join(broker.dir, 'release');
  await mkdir(work);
  release = await buildRelease(work, '2.0.0', 2 * 1024 * 1024);
  tarball = await readFile(release.tarball);
  chunks = { topic: TOPIC, size: CHUNK_BYTES, count: Math.ceil(release.bytes / CHUNK_BYTES) };
  await publishChunks(TOPIC, tarball);
});
t.teardown(() => broker.stop());

/** What an operator's script does: split the tarball, one retained QoS 1 mosquitto_pub per chunk. */
async function publishChunks(topic: string, bytes: Buffer, only?: number[]): Promise<void> {
  const count = Math.ceil(bytes.length / CHUNK_BYTES);
  for (let n = 0; n < count; n += 1) {
    if (only !== undefined && !only.includes(n)) continue;
    const file = path.join(work, `part.${n}`);
    await writeFile(file, bytes.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES));
    await run('mosquitto_pub', ['-p', String(broker.port), '-r', '-q', '1', '-t', `${topic}/${n}`, '-f', file]);
  }
}

function options(dir: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    artifact: { url: '', sha256: release.sha256, bytes: release.bytes, chunks },
    dir,
    broker: { url: broker.url },
    budget: { downloadBytesMax: 64 * 1024 * 1024, reservedBytes: () => 0 },
    bytesPerSecMax: () => 0,
    retryMs: { min: 10, max: 200 },
    idleMs: 5_000,
    ...extra,
  };
}

function sha(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

async function failure(work: Promise<unknown>): Promise<OtaFetchError> {
  const err = await work.then(
    () => null,
    (e: unknown) => e,
  );
  if (!(err instanceof OtaFetchError)) throw new Error(`expected an OtaFetchError, got ${String(err)}`);
  return err;
}

t.test('a release published as retained chunks arrives whole, each byte once, with progress', async (t) => {
  const progress: number[] = [];
  const result = await downloadArtifact(options(tempDir(t), { onProgress: (p) => progress.push(p.receivedBytes) }));
  t.equal(sha(await readFile(result.path)), release.sha256, 'the bytes are the release tarball');
  t.equal(result.fetchedBytes, release.bytes, 'no chunk taken twice');
  t.equal(result.attempts, 1);
  t.equal(progress.length, chunks.count, 'one progress step per chunk');
  t.equal(progress.at(-1), release.bytes);
});

t.test('a broker restart mid-transfer: the next attempt goes on from the chunk index reached', async (t) => {
  let restarted: Promise<void> | null = null;
  const retries: string[] = [];
  const result = await downloadArtifact(
    options(tempDir(t), {
      onProgress: (p) => {
        if (restarted === null && p.receivedBytes >= release.bytes / 2) restarted = broker.restart();
      },
      onRetry: (err) => retries.push(err.reason),
    }),
  );
  await restarted;
  t.ok(retries.length >= 1, `retried after the restart (${retries.join(', ')})`);
  t.ok(result.attempts >= 2);
  t.equal(sha(await readFile(result.path)), release.sha256);
  t.ok(result.fetchedBytes <= release.bytes * 1.05, `fetched ${result.fetchedBytes} for ${release.bytes}`);
});

t.test('a gateway restart resumes from the chunk index reached, each chunk taken once', async (t) => {
  const dir = tempDir(t);
  const stop = new AbortController();
  let stoppedAt = 0;
  const first = downloadArtifact(
    options(dir, {
      signal: stop.signal,
      onProgress: (p) => {
        if (stoppedAt === 0 && p.receivedBytes >= release.bytes / 3) ((stoppedAt = p.receivedBytes), stop.abort());
      },
    }),
  );
  t.equal((await failure(first)).code, 'ABORTED');
  const result = await downloadArtifact(options(dir));
  t.equal(result.fetchedBytes, release.bytes - stoppedAt, `only the chunks after byte ${stoppedAt} were taken`);
  t.equal(sha(await readFile(result.path)), release.sha256);
});

t.test('a part that ends inside a chunk (begun over HTTPS) goes on from its middle', async (t) => {
  const dir = tempDir(t);
  const held = 1024 * 1024 + 100;
  t.not(held % CHUNK_BYTES, 0, 'the part does not end on a chunk boundary');
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, PART_FILE_NAME), tarball.subarray(0, held));
  await savePartRecord(dir, {
    sha256: release.sha256,
    bytes: release.bytes,
    durableBytes: held,
    etag: '"0x1"',
    lastModified: null,
  });
  const result = await downloadArtifact(options(dir));
  t.equal(result.fetchedBytes, release.bytes - held, 'the cut chunk is taken from its middle, the rest whole');
  t.equal(sha(await readFile(result.path)), release.sha256);
});

t.test('a chunk not yet published is waited for; the download goes on once it is', async (t) => {
  const topic = 'outpost/gw-late/update/chunk';
  const missing = 3;
  await publishChunks(
    topic,
    tarball,
    [...Array(chunks.count).keys()].filter((n) => n !== missing),
  );
  const retries: string[] = [];
  let published: Promise<void> | null = null;
  const result = await downloadArtifact(
    options(tempDir(t), {
      artifact: { url: '', sha256: release.sha256, bytes: release.bytes, chunks: { ...chunks, topic } },
      idleMs: 300,
      onRetry: (err) => {
        retries.push(`${err.reason}: ${err.message}`);
        published ??= publishChunks(topic, tarball, [missing]);
      },
    }),
  );
  await published;
  t.match(retries[0], new RegExp(`^chunk-missing: no retained chunk on ${chunkTopic({ ...chunks, topic }, missing)}`));
  t.equal(sha(await readFile(result.path)), release.sha256);
});

async function refusedWith(t: Test, topic: string, bytes: Buffer, reason: string, text: RegExp): Promise<void> {
  await publishChunks(topic, bytes);
  const err = await failure(
    downloadArtifact(
      options(tempDir(t), {
        artifact: { url: '', sha256: release.sha256, bytes: release.bytes, chunks: { ...chunks, topic } },
      }),
    ),
  );
  t.equal(err.code, 'REFUSED');
  t.equal(err.reason, reason);
  t.match(err.message, text);
}

t.test('refusals: a tampered chunk fails the sha256, a chunk of the wrong size is named', async (t) => {
  const tampered = Buffer.from(tarball);
  tampered[5 * CHUNK_BYTES + 17]! ^= 0xff;
  await refusedWith(t, 'outpost/gw-bad/update/chunk', tampered, 'sha256', /the manifest says/);
  const short = tarball.subarray(0, tarball.length - 100);
  await refusedWith(
    t,
    'outpost/gw-short/update/chunk',
    short,
    'chunk-size',
    new RegExp(`gw-short/update/chunk/${chunks.count - 1} holds \\d+ bytes, the manifest's chunks say \\d+`),
  );
});

t.test("a manifest's chunks are checked: topic, size range, count against bytes", async (t) => {
  const key = signingKey();
  const base = signedManifest(key, '2.0.0', release, '');
  t.same(parseManifest(JSON.stringify({ ...base, chunks }), 'm.json').chunks, chunks);
  const bad: Array<[unknown, RegExp]> = [
    [{ ...chunks, topic: 'outpost/+/chunk' }, /m\.json: chunks: topic must be an MQTT topic without wildcards/],
    [{ ...chunks, topic: `${TOPIC}/` }, /trailing/],
    [{ ...chunks, size: 100 }, /size must be an integer 1024\.\.262144, got 100/],
    [{ ...chunks, count: chunks.count + 1 }, new RegExp(`count must be ceil\\(bytes / size\\) = ${chunks.count}`)],
    ['chunks', /must be \{topic, size, count\}/],
  ];
  for (const [value, text] of bad) {
    t.throws(() => parseManifest(JSON.stringify({ ...base, chunks: value }), 'm.json'), text);
  }
});

t.test('the updater takes a signed manifest with chunks from the uplink broker to the switch', async (t) => {
  const key = signingKey();
  const dataDir = tempDir(t);
  const layout = await slotLayout(tempDir(t), dataDir, '1.0.0');
  const restarts: string[] = [];
  const progress: number[] = [];
  const updater = await Updater.open({
    dataDir,
    layout,
    running: { version: '1.0.0', target: TEST_TARGET },
    publicKeys: () => [key.publicKey],
    healthSecs: 30,
    budget: { downloadBytesMax: 64 * 1024 * 1024, reservedBytes: () => 0 },
    bytesPerSecMax: () => 0,
    broker: { url: broker.url },
    restart: (why) => restarts.push(why),
    onError: () => {},
    downloadOverrides: { retryMs: { min: 10, max: 50 } },
  });
  t.teardown(() => updater.stop());
  updater.state.onChange((s) => progress.push(s.progress?.receivedBytes ?? 0));
  // No url at all: the broker is the site's only route.
  updater.offer(JSON.stringify({ ...signedManifest(key, '2.0.0', release, ''), chunks }), 'mqtt:outpost/gw-ota/update');
  const deadline = Date.now() + 60_000;
  while (restarts.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  t.same(restarts, ['update to 2.0.0']);
  t.equal(await slotVersion(layout, 'current'), '2.0.0', 'current names the release read from the chunks');
  t.ok(
    progress.some((b) => b > 0 && b < release.bytes),
    'progress was reported along the way',
  );
});
