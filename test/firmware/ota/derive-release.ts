import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export interface Derived {
  version: string;
  target?: string;
  storeFormat?: number;
  /** JavaScript put at the top of the bundle (after its shebang): how a broken release is made. */
  prelude?: string;
}

function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Another release made from an unpacked one built by `npm run release`: the same files (hard links, so it
 * costs no copy) with another version, target or ring log format in release.json and package.json, or a
 * bundle broken on purpose; packed the way release.js packs and signed by scripts/ota-sign.js.
 */
export function deriveRelease(unpacked: string, outDir: string, keyFile: string, d: Derived): string {
  const base = JSON.parse(readFileSync(join(unpacked, 'release.json'), 'utf8')) as Record<string, unknown>;
  const target = d.target ?? String(base['target']);
  const name = `outpost-${d.version}-${target}`;
  const stage = join(outDir, 'stage');
  mkdirSync(stage, { recursive: true });
  const dir = join(stage, name);
  run('cp', ['-al', unpacked, dir]);
  // Unlinked before writing: the hard-linked original must not change.
  const replace = (file: string, text: string) => (rmSync(join(dir, file)), writeFileSync(join(dir, file), text));
  const release = { ...base, version: d.version, target, storeFormat: d.storeFormat ?? base['storeFormat'] };
  replace('release.json', `${JSON.stringify(release, null, 2)}\n`);
  const pkg = JSON.parse(readFileSync(join(unpacked, 'package.json'), 'utf8')) as Record<string, unknown>;
  replace('package.json', `${JSON.stringify({ ...pkg, version: d.version }, null, 2)}\n`);
  if (d.prelude !== undefined) {
    const [shebang, ...rest] = readFileSync(join(unpacked, 'outpost.js'), 'utf8').split('\n');
    replace('outpost.js', [shebang, d.prelude, ...rest].join('\n'));
  }
  const tarball = join(outDir, `${name}.tar.gz`);
  // gzip -1: these tarballs live for one test run.
  run('tar', ['-C', stage, '-I', 'gzip -1', '-cf', tarball, name]);
  rmSync(dir, { recursive: true });
  run(process.execPath, [join(ROOT, 'scripts/ota-sign.js'), '--sign-key', keyFile, tarball]);
  return tarball;
}
