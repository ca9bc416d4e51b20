import t, { type Test } from 'tap';
import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { commitPending, readPending, RESULT_FILE } from '../../../firmware/ota/pending.js';
import { slotVersion, type ReleaseLayout } from '../../../firmware/ota/slots.js';
import { UPDATE_STATE_FILE, type UpdatePhase } from '../../../firmware/ota/state.js';
import { Updater, type UpdaterOptions } from '../../../firmware/ota/updater.js';
import { ArtifactServer } from '../../support/artifact-server.js';
import {
  buildRelease,
  signedManifest,
  signingKey,
  slotLayout,
  TEST_TARGET,
  type BuiltRelease,
} from '../../support/ota-release.js';
import { createTestCa, type TestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/**
 * The updater over real parts: a signed manifest for a real release tarball served over HTTPS on loopback,
 * the real apply side switching a slot layout in a temp dir, the state file on disk. Covers the whole path
 * to the restart, the outcome reported after it (committed; rolled back with the launcher's reason), a
 * download resumed by the next process, and every refusal with its reason and count.
 */

const MiB = 1024 * 1024;
const key = signingKey();
let ca: TestCa;
let server: ArtifactServer;
let release: BuiltRelease;

t.before(async () => {
  ca = await createTestCa();
  server = await ArtifactServer.start(await ca.issue('localhost', ['localhost']));
  release = await buildRelease(tempDir(t), '1.1.0', 3 * MiB);
  server.setArtifact(await readFile(release.tarball));
});
t.teardown(async () => {
  await server.close();
  await ca.dispose();
});

interface Rig {
  dataDir: string;
  layout: ReleaseLayout;
  restarts: string[];
  errors: string[];
  open(running?: string, extra?: Partial<UpdaterOptions>): Promise<Updater>;
}

async function rig(t: Test): Promise<Rig> {
  const dataDir = tempDir(t);
  const layout = await slotLayout(tempDir(t), dataDir, '1.0.0');
  const restarts: string[] = [];
  const errors: string[] = [];
  const open = async (running = '1.0.0', extra: Partial<UpdaterOptions> = {}) => {
    const updater = await Updater.open({
      dataDir,
      layout,
      running: { version: running, target: TEST_TARGET },
      publicKeys: () => [key.publicKey],
      healthSecs: 30,
      budget: { downloadBytesMax: 64 * MiB, reservedBytes: () => 0 },
      bytesPerSecMax: () => 0,
      ca: ca.cert,
      restart: (why) => restarts.push(why),
      onError: (e) => errors.push(e.message),
      downloadOverrides: { retryMs: { min: 10, max: 50 } },
      ...extra,
    });
    t.teardown(() => updater.stop());
    return updater;
  };
  return { dataDir, layout, restarts, errors, open };
}

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

function phases(updater: Updater): UpdatePhase[] {
  const seen: UpdatePhase[] = [];
  updater.state.onChange((s, changed) => changed && seen.push(s.state));
  return seen;
}

t.test(
  'a signed manifest goes all the way to the switch and a restart; the new release reports its commit',
  async (t) => {
    const r = await rig(t);
    const updater = await r.open();
    const seen = phases(updater);
    updater.offer(JSON.stringify(signedManifest(key, '1.1.0', release, server.url())), 'test');
    await until('the restart request', () => r.restarts.length > 0);
    t.same(seen, ['downloading', 'verifying', 'installing', 'restarting']);
    t.same(r.restarts, ['update to 1.1.0']);
    t.equal(await slotVersion(r.layout, 'current'), '1.1.0', 'current names the new release');
    t.equal(await slotVersion(r.layout, 'previous'), '1.0.0');
    t.equal((await readPending(r.layout.stateDir))?.version, '1.1.0', 'pending until its health check commits it');
    await t.rejects(stat(join(updater.downloadDir, 'artifact.part')), { code: 'ENOENT' }, 'the tarball is gone');
    const saved = JSON.parse(await readFile(join(r.dataDir, 'ota', UPDATE_STATE_FILE), 'utf8')) as { state: string };
    t.equal(saved.state, 'restarting', 'the state is on disk before the restart');
    await updater.stop();

    // The process after the restart runs 1.1.0; firmware/ota/health.ts commits once it is healthy.
    const next = await r.open('1.1.0');
    t.equal(next.status().state, 'restarting');
    const resumed = next.resume();
    await commitPending(r.layout.stateDir, (await readPending(r.layout.stateDir))!);
    await resumed;
    t.match(next.status(), { state: 'committed', version: '1.1.0', running: '1.1.0', reason: null });
  },
);

t.test('rolled back by the launcher: the old release reports the reason it recorded', async (t) => {
  const r = await rig(t);
  const updater = await r.open();
  updater.offer(signedManifest(key, '1.1.0', release, server.url()), 'test');
  await until('the restart request', () => r.restarts.length > 0);
  await updater.stop();
  const reason = 'crash-loop: exited 3 times';
  const result = { state: 'rolled-back', version: '1.1.0', from: '1.0.0', reason, at: '' };
  await writeFile(join(r.layout.stateDir, RESULT_FILE), JSON.stringify(result));
  const old = await r.open('1.0.0');
  await old.resume();
  t.match(old.status(), { state: 'rolled-back', version: '1.1.0', running: '1.0.0', reason: 'crash-loop' });
  t.match(old.status().message, /exited 3 times/);
});

t.test('a restart mid-download resumes it with a Range request', async (t) => {
  const r = await rig(t);
  const first = await r.open();
  let stopping: Promise<void> | null = null;
  first.state.onChange((s) => {
    if (stopping === null && (s.progress?.receivedBytes ?? 0) >= 2 * MiB) stopping = first.stop();
  });
  first.offer(signedManifest(key, '1.1.0', release, server.url()), 'test');
  await until('the stop', () => stopping !== null);
  await stopping;
  t.equal(first.status().state, 'downloading', 'stopped in the middle');
  const before = server.requests.length;
  const second = await r.open();
  await second.resume();
  await until('the restart request', () => r.restarts.length > 0);
  const resumed = server.requests.slice(before);
  t.equal(resumed.length, 1);
  t.match(resumed[0], { status: 206, range: /^bytes=[1-9]\d*-$/ });
  t.equal(await slotVersion(r.layout, 'current'), '1.1.0');
});

t.test('refusals: hostile documents, signature, target, downgrade, tampered tarball, disk budget', async (t) => {
  const r = await rig(t);
  const updater = await r.open('1.0.0', { budget: { downloadBytesMax: 64 * MiB, reservedBytes: () => 0 } });
  const good = signedManifest(key, '1.1.0', release, server.url());
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['not JSON', '{"version":', 'malformed', /not JSON/],
    ['an array', '[1,2]', 'malformed', /must be a JSON object/],
    ['huge', JSON.stringify({ ...good, pad: 'x'.repeat(20_000) }), 'malformed', /over 16384 bytes/],
    ['a missing field', JSON.stringify({ ...good, sha256: undefined }), 'malformed', /sha256: must be 64/],
    ['unsigned', { ...good, signature: '' }, 'unsigned', /no signature/],
    [
      'signed by another key',
      signedManifest(signingKey(), '1.1.0', release, server.url()),
      'bad-signature',
      /none of the 1/,
    ],
    [
      'another target',
      signedManifest(key, '1.1.0', release, server.url(), { target: 'linux-arm64' }),
      'wrong-target',
      /linux-arm64/,
    ],
    ['a downgrade', signedManifest(key, '0.9.0', release, server.url()), 'downgrade', /not newer/],
    [
      'a tampered tarball',
      signedManifest(key, '1.1.0', { ...release, sha256: 'ab'.repeat(32) }, server.url()),
      'sha256',
      /the manifest says abab/,
    ],
    [
      'over the budget',
      signedManifest(key, '1.1.0', { ...release, bytes: 65 * MiB }, server.url()),
      'disk-budget',
      /ota.downloadBytesMax/,
    ],
  ];
  let refused = 0;
  for (const [what, doc, reason, message] of cases) {
    updater.offer(doc, 'test');
    refused += 1;
    await until(what, () => Object.values(updater.status().refusals).reduce((a, b) => a + b, 0) === refused);
    const s = updater.status();
    t.equal(s.state, 'refused', what);
    t.equal(s.reason, reason, `${what}: ${s.message}`);
    t.match(s.message, message, what);
  }
  t.same(updater.status().refusals, {
    malformed: 4,
    unsigned: 1,
    'bad-signature': 1,
    'wrong-target': 1,
    downgrade: 1,
    sha256: 1,
    'disk-budget': 1,
  });
  t.equal(await slotVersion(r.layout, 'current'), '1.0.0', 'nothing was switched');
  t.same(r.restarts, []);
  updater.offer(cases[0]![1], 'test');
  t.equal(updater.status().refusals.malformed, 5, 'the same bad document again is counted again');
  await updater.stop();
});

t.test('the same manifest again changes nothing; an empty one withdraws the download in progress', async (t) => {
  const r = await rig(t);
  const updater = await r.open('1.0.0', { bytesPerSecMax: () => MiB });
  const manifest = signedManifest(key, '1.1.0', release, server.url());
  const before = server.requests.length;
  updater.offer(manifest, 'test');
  await until('the download', () => (updater.status().progress?.receivedBytes ?? 0) > 0);
  updater.offer(JSON.stringify(manifest), 'test');
  updater.offer(Buffer.from(JSON.stringify(manifest)), 'test');
  t.equal(server.requests.length - before, 1, 'one GET for three offers of one manifest');
  updater.offer(Buffer.alloc(0), 'mqtt:outpost/gw/update');
  await until('the withdrawal', () => updater.status().state === 'idle');
  t.match(updater.status(), { state: 'idle', reason: 'withdrawn', message: 'withdrawn by mqtt:outpost/gw/update' });
  await t.rejects(stat(join(updater.downloadDir, 'artifact.part')), { code: 'ENOENT' }, 'the part is deleted');
  t.same(r.restarts, []);
  await updater.stop();
});
