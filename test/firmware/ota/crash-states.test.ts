import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, lstatSync, mkdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { applyRelease } from '../../../firmware/ota/apply.js';
import { realSlotFs } from '../../../firmware/ota/slots.js';
import { CrashRecorder, type CrashState } from '../../support/ota/crash-fs.js';
import { tinyRelease } from '../../support/ota/tiny-release.js';
import { tempDir } from '../../support/tmp.js';

/**
 * Power cuts beyond SIGKILL (switch.test.ts cuts the process; the kernel then still writes everything out):
 * every state a file system may be left in by a cut at any point of an update's switch — renames not durable,
 * directory entries lost or persisted out of order, a file written but not synced, a release tree whose files
 * never reached the disk — laid out for real and started with the real launcher. Each must run a whole
 * release, the old or the new, and the new one only as a pending update (so that a bad one is rolled back).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LAUNCHER = join(ROOT, 'scripts/pack/ota-launch.sh');
/** A launcher start of the tiny release ends in well under a second; a hang is a bug. */
const CHILD_TIMEOUT_MS = 30_000;
/** Launchers started together: the machine's two cores are shared, the launches mostly wait. */
const LAUNCHES_AT_ONCE = 4;

function launch(prefix: string): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    // Not tap's NODE_OPTIONS (its TypeScript loader): the release's node starts as it would under systemd.
    const env = { ...process.env, NODE_OPTIONS: '', OUTPOST_DATA_DIR: join(prefix, 'data') };
    const proc = spawn('sh', [join(prefix, 'launch'), 'run'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const timer = setTimeout(() => proc.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    proc.on('close', (code) => (clearTimeout(timer), resolve({ code, out })));
  });
}

/** The version `current` names when that release is whole, else why it is not runnable. */
function runnable(releases: string): { version: string } | { problem: string } {
  if (!existsSync(join(releases, 'current'))) return { problem: 'current names nothing' };
  const version = readlinkSync(join(releases, 'current'));
  for (const f of ['bin/node', 'outpost.js', 'package.json', 'release.json']) {
    if (!existsSync(join(releases, version, f))) return { problem: `current -> ${version} has no ${f}` };
  }
  return { version };
}

function describe(state: CrashState, prefix: string): string {
  return [...state].map(([p, v]) => `${p.slice(prefix.length)}=${v.replace(/\n/g, '\\n')}`).join(' ');
}

t.test('every crash state of the switch leaves the old or the new release runnable, the new one pending', async (t) => {
  const dir = tempDir(t);
  const first = tinyRelease(join(dir, 'a'), '1.0.0');
  const second = tinyRelease(join(dir, 'b'), '2.0.0');
  const prefix = join(dir, 'site');
  const releases = join(prefix, 'releases');
  const dataDir = join(prefix, 'data');
  mkdirSync(join(releases, '1.0.0'), { recursive: true });
  mkdirSync(dataDir);
  spawnSync('tar', ['-xzf', first.tarball, '-C', join(releases, '1.0.0'), '--strip-components=1']);
  spawnSync('ln', ['-s', '1.0.0', join(releases, 'current')]);
  // The installed release: install.sh syncs it, so the recorder starts from it as durable.
  const recorder = new CrashRecorder(realSlotFs, [dataDir, join(dataDir, 'ota'), releases]);
  await realSlotFs.syncPath(join(releases, '1.0.0'));
  const layout = { releasesDir: releases, stateDir: join(dataDir, 'ota') };
  await applyRelease(second.tarball, second.manifest, layout, { healthSecs: 30, fs: recorder.fs });
  const trees = new Map(['1.0.0', '2.0.0'].map((v) => [lstatSync(join(releases, v)).ino, join(releases, v)]));
  // The installed tree counts as synced from the start.
  for (const s of recorder.snapshots) s.synced.add(lstatSync(join(releases, '1.0.0')).ino);

  const seen = new Set<string>();
  const cases: Array<{ state: CrashState; index: number }> = [];
  for (let i = 0; i < recorder.snapshots.length; i++) {
    for (const state of recorder.states(i)) {
      const key = describe(state, prefix);
      if (!seen.has(key)) cases.push({ state, index: i });
      seen.add(key);
    }
  }
  const failures: string[] = [];
  let ranNew = 0;
  const check = async ({ state, index }: { state: CrashState; index: number }): Promise<void> => {
    const site = join(tempDir(t), 'site');
    recorder.materialize(state, index, (p) => site + p.slice(prefix.length), trees);
    mkdirSync(join(site, 'data'), { recursive: true });
    copyFileSync(LAUNCHER, join(site, 'launch'));
    const where = `cut after "${recorder.snapshots[index]!.after}": ${describe(state, prefix)}`;
    const before = runnable(join(site, 'releases'));
    if ('problem' in before) return void failures.push(`${where}: ${before.problem}`);
    const boot = await launch(site);
    const ran = /running (\S+)/.exec(boot.out)?.[1];
    if (boot.code !== 0 || (ran !== '1.0.0' && ran !== '2.0.0')) failures.push(`${where}: launcher: ${boot.out}`);
    else if (ran === '2.0.0' && !boot.out.includes('starting pending release 2.0.0')) {
      failures.push(`${where}: 2.0.0 runs with no pending record, so nothing would roll it back`);
    }
    if (ran === '2.0.0') ranNew += 1;
  };
  // A few launchers at once: a pending start waits out the launcher's one-second poll.
  for (let i = 0; i < cases.length; i += LAUNCHES_AT_ONCE) {
    await Promise.all(cases.slice(i, i + LAUNCHES_AT_ONCE).map(check));
  }
  t.same(failures.slice(0, 5), [], `${failures.length} of ${seen.size} crash states fail`);
  t.ok(recorder.snapshots.length >= 20, `${recorder.snapshots.length} points of the switch cut`);
  t.ok(ranNew > 0 && ranNew < seen.size, `${ranNew} of ${seen.size} states run the new release, the rest the old`);
  t.equal(readFileSync(join(releases, 'current', 'release.json'), 'utf8').includes('"2.0.0"'), true);
});
