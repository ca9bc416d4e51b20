import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { ApplyError, applyRelease } from '../../../firmware/ota/apply.js';
import { tempDir } from '../../support/tmp.js';
import { bundleForChild } from '../../support/bundle.js';
import { tinyRelease } from '../../support/ota/tiny-release.js';
import { STORE_FORMAT } from '../../../firmware/store/format.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LAUNCHER = join(ROOT, 'scripts/pack/ota-launch.sh');
/** A cut run of the updater or the launcher ends in well under a second; a hang is a bug. */
const CHILD_TIMEOUT_MS = 30_000;

interface Site {
  prefix: string;
  releases: string;
  dataDir: string;
  state: string;
}

/** An installed gateway as install.sh leaves it: release 1.0.0 current, the launcher, no pending update. */
function site(t: Parameters<typeof tempDir>[0], first: string): Site {
  const prefix = tempDir(t);
  const releases = join(prefix, 'releases');
  mkdirSync(join(releases, '1.0.0'), { recursive: true });
  spawnSync('tar', ['-xzf', first, '-C', join(releases, '1.0.0'), '--strip-components=1']);
  spawnSync('ln', ['-s', '1.0.0', join(releases, 'current')]);
  copyFileSync(LAUNCHER, join(prefix, 'launch'));
  const dataDir = join(prefix, 'data');
  mkdirSync(dataDir);
  return { prefix, releases, dataDir, state: join(dataDir, 'ota') };
}

interface Ran {
  code: number | null;
  signal: string | null;
  out: string;
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Ran> {
  return new Promise((resolve) => {
    const proc = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    proc.on('close', (code, signal) => (clearTimeout(timer), resolve({ code, signal, out })));
  });
}

/** A slot is whole when every file a release needs is there and its release.json names the folder's version. */
function whole(releases: string, slot: string): string | null {
  if (!existsSync(join(releases, slot))) return null;
  const version = readlinkSync(join(releases, slot));
  for (const f of ['bin/node', 'outpost.js', 'package.json', 'release.json']) {
    if (!existsSync(join(releases, version, f))) throw new Error(`${slot} -> ${version} has no ${f}: a half release`);
  }
  const release = JSON.parse(readFileSync(join(releases, version, 'release.json'), 'utf8')) as { version: string };
  if (release.version !== version) throw new Error(`${slot} -> ${version} holds ${release.version}`);
  return version;
}

t.test('SIGKILL of the updater before each file-system operation: always one whole, runnable release', async (t) => {
  const dir = tempDir(t);
  const first = tinyRelease(join(dir, 'a'), '1.0.0');
  const second = tinyRelease(join(dir, 'b'), '2.0.0');
  const child = await bundleForChild(
    fileURLToPath(new URL('../../support/ota/switch-child.ts', import.meta.url)),
    tempDir(t),
  );
  // One uninterrupted run counts the operations; then one run cut before each of them.
  const clean = site(t, first.tarball);
  const report = join(dir, 'ops.log');
  const updater = (s: Site, killAt: number, log: string) =>
    run(process.execPath, [child, second.tarball, second.file, s.releases, s.state, String(killAt), log]);
  const full = await updater(clean, 0, report);
  t.equal(full.code, 0, full.out);
  const ops = readFileSync(report, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l !== 'done');
  t.ok(ops.length >= 10, `${ops.length} operations recorded:\n${ops.join('\n')}`);
  for (let k = 1; k <= ops.length; k++) {
    const s = site(t, first.tarball);
    const cut = await updater(s, k, join(dir, `cut-${k}.log`));
    if (cut.signal !== 'SIGKILL') throw new Error(`cut ${k}: the updater ended with ${cut.code}: ${cut.out}`);
    const current = whole(s.releases, 'current');
    whole(s.releases, 'previous');
    if (current !== '1.0.0' && current !== '2.0.0') throw new Error(`cut before ${ops[k - 1]}: current is ${current}`);
    // What systemd starts next: the launcher, which runs current (counting a start if it is the pending one).
    const boot = await run('sh', [join(s.prefix, 'launch'), 'run'], { OUTPOST_DATA_DIR: s.dataDir });
    if (boot.code !== 0 || !boot.out.includes(`running ${current}`)) {
      throw new Error(`cut before ${ops[k - 1]}: the launcher said ${boot.out}`);
    }
    // And the update, tried again, completes from whatever the cut left.
    const retry = await updater(s, 0, join(dir, `retry-${k}.log`));
    if (current === '1.0.0' && retry.code !== 0) {
      throw new Error(`cut before ${ops[k - 1]}: the retry failed: ${retry.out}`);
    }
    const [now, before] = [whole(s.releases, 'current'), whole(s.releases, 'previous')];
    if (now !== '2.0.0' || (current === '1.0.0' && before !== '1.0.0')) {
      throw new Error(`cut before ${ops[k - 1]}: after the retry current=${now} previous=${before}`);
    }
  }
  t.pass(`${ops.length} cuts, each followed by a start of the launcher and a retried update`);
});

t.test('a tarball that does not match its manifest is refused before anything is unpacked', async (t) => {
  const dir = tempDir(t);
  const first = tinyRelease(join(dir, 'a'), '1.0.0');
  const second = tinyRelease(join(dir, 'b'), '2.0.0');
  const s = site(t, first.tarball);
  const layout = { releasesDir: s.releases, stateDir: s.state };
  const opts = { healthSecs: 30 };
  await t.rejects(applyRelease(second.tarball, { ...second.manifest, sha256: '0'.repeat(64) }, layout, opts), {
    reason: 'wrong-hash',
    message: /SHA-256 [0-9a-f]{64}, the manifest says 0{64}/,
  });
  await t.rejects(
    applyRelease(second.tarball, { ...second.manifest, bytes: second.manifest.bytes - 1 }, layout, opts),
    { reason: 'wrong-hash', message: /more than bytes/ },
  );
  const tampered = join(dir, 'tampered.tar.gz');
  const bytes = readFileSync(second.tarball);
  bytes[bytes.length >> 1] ^= 0x01;
  writeFileSync(tampered, bytes);
  const error = await applyRelease(tampered, second.manifest, layout, { healthSecs: 30 }).catch((err: unknown) => err);
  t.ok(error instanceof ApplyError && error.reason === 'wrong-hash', `a flipped bit: ${String(error)}`);
  const partial = existsSync(join(s.releases, '2.0.0.partial'));
  const after = [readlinkSync(join(s.releases, 'current')), partial, existsSync(s.state)];
  t.same(after, ['1.0.0', false, false], 'current untouched, nothing unpacked, no pending record');
});

t.test('a release whose release.json has another ring log format than its signed manifest is refused', async (t) => {
  const dir = tempDir(t);
  const first = tinyRelease(join(dir, 'a'), '1.0.0');
  const second = tinyRelease(join(dir, 'b'), '2.0.0', 'linux-x64', STORE_FORMAT + 1);
  const s = site(t, first.tarball);
  const layout = { releasesDir: s.releases, stateDir: s.state };
  await t.rejects(applyRelease(second.tarball, second.manifest, layout, { healthSecs: 30 }), {
    reason: 'bad-release',
    message:
      `release.json says ring log format ${STORE_FORMAT + 1}, the signed manifest ${STORE_FORMAT}: the ` +
      'format check was made for another release',
  });
  t.same([readlinkSync(join(s.releases, 'current')), existsSync(s.state)], ['1.0.0', false], 'nothing switched');
});

t.test('the launcher of a committed release, stopped for the next update, leaves that update pending', async (t) => {
  const dir = tempDir(t);
  const first = tinyRelease(join(dir, 'a'), '1.0.0');
  const second = tinyRelease(join(dir, 'b'), '2.0.0');
  const third = tinyRelease(join(dir, 'c'), '3.0.0');
  const s = site(t, first.tarball);
  const layout = { releasesDir: s.releases, stateDir: s.state };
  await applyRelease(second.tarball, second.manifest, layout, { healthSecs: 30 });
  const env = { ...process.env, OUTPOST_DATA_DIR: s.dataDir, TINY_COMMIT: '1' };
  const launcher = spawn('sh', [join(s.prefix, 'launch'), 'run'], { env });
  t.teardown(() => void launcher.kill('SIGKILL'));
  const exited = new Promise((resolve) => launcher.on('exit', resolve));
  const deadline = Date.now() + CHILD_TIMEOUT_MS;
  while (!existsSync(join(s.state, 'result')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
  const committed = readFileSync(join(s.state, 'result'), 'utf8');
  t.match(committed, /"state":"committed","version":"2\.0\.0"/, '2.0.0 committed under its launcher');
  // outpost update of 3.0.0 while 2.0.0 runs, then the restart that ends 2.0.0's launcher.
  await applyRelease(third.tarball, third.manifest, layout, { healthSecs: 30 });
  launcher.kill('SIGTERM');
  await exited;
  t.match(readFileSync(join(s.state, 'pending'), 'utf8'), /^version=3\.0\.0$/m, 'the update to 3.0.0 is still pending');
  const boot = await run('sh', [join(s.prefix, 'launch'), 'run'], { OUTPOST_DATA_DIR: s.dataDir });
  t.match(boot.out, /starting pending release 3\.0\.0 \(start 1 of 3/, 'and its next start is counted as one of 3.0.0');
});
