import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { freePort } from '../../support/brokers.js';
import { bundleForChild } from '../../support/bundle.js';
import { tempDir } from '../../support/tmp.js';
import { deriveRelease, type Derived } from '../../support/ota/derive-release.js';
import type { Scenario } from '../../support/ota/ns-driver.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** One real release build (about a minute on 2 cores), six derived tarballs and the scenario's restarts. */
const TEST_TIMEOUT_MS = 12 * 60_000;
/** The scenario inside the namespace: installs, an update, four rollbacks with 20 s health deadlines. */
const SCENARIO_TIMEOUT_MS = 8 * 60_000;

/** Breaks the bundle before it does anything: the release exits at once, as a bad build would. */
const EXITS = 'process.exit(3);';
/** Never reaches READY: module evaluation waits forever, with a timer keeping the process alive. */
const HANGS = 'await new Promise(() => setInterval(() => {}, 60_000));';
/** READY, but no outgoing connection ever succeeds: a release whose uplink is broken. */
const NO_CLOUD =
  "import __otaNet from 'node:net'; __otaNet.Socket.prototype.connect = function () { const s = this; " +
  "process.nextTick(() => s.destroy(new Error('test release: no route to the cloud'))); return s; };";

t.setTimeout(TEST_TIMEOUT_MS);

/** `npm run release -- --sign-key` once, then the other releases derived from it; returns the scenario. */
async function releases(t: Test, dir: string): Promise<Scenario> {
  const keys = tempDir(t);
  for (const name of ['ota', 'other'])
    spawnSync(process.execPath, [join(ROOT, 'scripts/ota-keygen.js'), join(keys, name)]);
  const out = join(dir, 'release');
  const build = spawnSync(
    process.execPath,
    [join(ROOT, 'scripts/release.js'), '--sign-key', join(keys, 'ota.key'), 'linux-x64'],
    { cwd: ROOT, env: { ...process.env, OUTPOST_RELEASE_DIR: out }, encoding: 'utf8' },
  );
  t.equal(build.status, 0, build.stderr.slice(-3000));
  const first = join(out, `outpost-${VERSION}-linux-x64.tar.gz`);
  const signed = new RegExp(`signed linux-x64: ${first}\\.manifest\\.json`);
  t.match(build.stdout, signed, 'npm run release -- --sign-key signs each tarball');
  t.ok(existsSync(`${first}.manifest.json`));
  const unpacked = join(dir, 'unpacked');
  spawnSync('mkdir', [unpacked]);
  spawnSync('tar', ['-xzf', first, '-C', unpacked]);
  const release = join(unpacked, `outpost-${VERSION}-linux-x64`);
  const key = join(keys, 'ota.key');
  const derive = (version: string, extra: Partial<Derived> = {}) =>
    deriveRelease(release, out, key, { version, ...extra });
  const second = derive('0.1.1');
  const badSignature = join(dir, 'bad-signature.manifest.json');
  deriveRelease(release, join(dir, 'other'), join(keys, 'other.key'), { version: '0.1.1' });
  copyFileSync(join(dir, 'other', 'outpost-0.1.1-linux-x64.tar.gz.manifest.json'), badSignature);
  const tampered = join(out, 'tampered.tar.gz');
  const bytes = readFileSync(second);
  bytes[bytes.length >> 1] ^= 0x40;
  writeFileSync(tampered, bytes);
  copyFileSync(`${second}.manifest.json`, `${tampered}.manifest.json`);
  return {
    root: tempDir(t),
    flat: release,
    first: release,
    keyPem: join(keys, 'ota.pem'),
    brokerPort: await freePort(),
    tarballs: {
      first,
      second,
      tampered,
      exits: derive('0.2.0', { prelude: EXITS }),
      hangs: derive('0.2.1', { prelude: HANGS }),
      noCloud: derive('0.2.2', { prelude: NO_CLOUD }),
      watchdog: derive('0.2.3'),
      arm64: derive('0.3.0', { target: 'linux-arm64' }),
      store2: derive('0.3.1', { storeFormat: 2 }),
    },
    badSignature,
    results: join(dir, 'results.jsonl'),
  };
}

interface Check {
  name: string;
  ok: boolean;
  detail: string;
}

t.test('OTA in the install.sh namespace: signed releases, refusals, an update with a backlog, rollbacks', async (t) => {
  if (spawnSync('unshare', ['-m', 'true']).status !== 0) {
    return void t.comment('skipped: no private mount namespace here (needs root)');
  }
  const dir = tempDir(t);
  const scenario = await releases(t, dir);
  writeFileSync(join(dir, 'scenario.json'), JSON.stringify(scenario));
  const driver = await bundleForChild(
    fileURLToPath(new URL('../../support/ota/ns-driver.ts', import.meta.url)),
    tempDir(t),
  );
  const setup = join(ROOT, 'test/firmware/ota/ns-setup.sh');
  const run = spawnSync('unshare', ['-m', setup, scenario.root, process.execPath, driver, join(dir, 'scenario.json')], {
    encoding: 'utf8',
    timeout: SCENARIO_TIMEOUT_MS,
  });
  t.equal(run.status, 0, `${run.stdout}${run.stderr}`.slice(-3000));
  const lines = existsSync(scenario.results) ? readFileSync(scenario.results, 'utf8').trim().split('\n') : [];
  const results = lines.map((l) => JSON.parse(l) as Check);
  for (const r of results) t.ok(r.ok, r.name, r.ok ? {} : { detail: r.detail });
  t.equal(results.at(-1)?.name, 'driver finished', 'the scenario ran to its end');
  t.ok(results.length >= 20, `${results.length} checks`);
  const log = join(scenario.root, 'service.log');
  if (!results.every((r) => r.ok) && existsSync(log)) {
    // The launcher's decisions and each start's end, not the gateway's status lines.
    const decisions = /outpost launch|--- start|outpost update|"level":"(error|fatal)"/;
    t.comment(
      readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => decisions.test(l))
        .slice(-200)
        .join('\n'),
    );
  }
});
