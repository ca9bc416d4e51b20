import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { UpdateManifest } from '../../../firmware/ota/manifest.js';
import { STORE_FORMAT } from '../../../firmware/store/format.js';

/**
 * Prints `running <version>`; with TINY_COMMIT=1 it also records its pending update committed, in the format of
 * firmware/ota/pending.ts, as a healthy gateway would, and runs until SIGTERM.
 */
const TINY_BUNDLE = `import { readFileSync, renameSync, writeFileSync } from 'node:fs';
const { version } = JSON.parse(readFileSync(new URL('./release.json', import.meta.url), 'utf8'));
console.log('running ' + version);
if (process.env.TINY_COMMIT === '1') {
  const dir = process.env.OUTPOST_DATA_DIR + '/ota';
  const result = { state: 'committed', version, from: '', reason: '', at: new Date().toISOString() };
  writeFileSync(dir + '/result.tmp', JSON.stringify(result) + '\\n');
  renameSync(dir + '/result.tmp', dir + '/result');
  setInterval(() => {}, 60000);
  process.on('SIGTERM', () => process.exit(0));
}
`;

/**
 * A release tarball with the layout of `npm run release`'s but seconds to make: bin/node is this machine's
 * node (a link), and outpost.js prints `running <version>` from its own release.json. For tests of the
 * slot mechanics, where the real 37 MB release would only make each of dozens of cuts slower.
 */
export interface TinyRelease {
  tarball: string;
  manifest: UpdateManifest;
  /** The manifest's file, beside the tarball. */
  file: string;
}

/** `storeFormat` goes into release.json only; the manifest always says this build's (a mismatched release). */
export function tinyRelease(
  dir: string,
  version: string,
  target = 'linux-x64',
  storeFormat = STORE_FORMAT,
): TinyRelease {
  const top = `outpost-${version}-${target}`;
  const root = join(dir, 'stage', top);
  mkdirSync(join(root, 'bin'), { recursive: true });
  symlinkSync(process.execPath, join(root, 'bin/node'));
  writeFileSync(join(root, 'outpost.js'), TINY_BUNDLE);
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: 'outpost', version, type: 'module' }));
  const release = { name: 'outpost', version, target, storeFormat, addons: [] };
  writeFileSync(join(root, 'release.json'), JSON.stringify(release));
  const tarball = join(dir, `${top}.tar.gz`);
  const tar = spawnSync('tar', ['-C', join(dir, 'stage'), '-czf', tarball, top]);
  if (tar.status !== 0) throw new Error(`tar: ${tar.stderr.toString()}`);
  const manifest: UpdateManifest = {
    version,
    target,
    url: '',
    sha256: createHash('sha256').update(readFileSync(tarball)).digest('hex'),
    bytes: statSync(tarball).size,
    storeFormat: STORE_FORMAT,
    signature: '',
  };
  const file = `${tarball}.manifest.json`;
  writeFileSync(file, JSON.stringify(manifest));
  return { tarball, manifest, file };
}
