// `npm run release [-- [--sign-key FILE] linux-arm64 ...]`: one self-contained tarball per target in release/,
// holding a Node 20 binary, the bundle, the native addons built for that target, the systemd unit, the OTA
// launcher, a default board.json with boards/, and install.sh. Node binaries and headers come from the npm
// registry's node-linux-* packages. With --sign-key, each tarball gets its signed OTA manifest beside it.
import { execFileSync } from 'node:child_process';
import { createPublicKey } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildAddons, checkElfMachines, copyPackages, runtimeClosure } from './pack/addons.js';
import { GLIBC_MIN, RELEASE_ADDONS, TARGETS } from './pack/targets.js';
import { isExternal } from './externals.js';
import { readSigningKey, signTarball, storeFormatOf } from './pack/sign.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const OUT_DIR = process.env.OUTPOST_RELEASE_DIR ? resolve(process.env.OUTPOST_RELEASE_DIR) : join(REPO, 'release');
/** Downloaded Node packages, kept between runs (each is 40-45 MB). */
const CACHE_DIR = join(REPO, 'release', '.cache');

/** @param {string} file */
function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** The unpacked node-linux-* package for a target (bin/node and include/node), fetched once with npm pack. */
/** @param {import('./pack/targets.js').TargetSpec} spec */
function nodePackage(spec) {
  const dir = join(CACHE_DIR, `${spec.nodePackage}-${spec.nodeVersion}`);
  if (existsSync(join(dir, 'bin/node')) && existsSync(join(dir, 'include/node/node.h'))) return dir;
  mkdirSync(CACHE_DIR, { recursive: true });
  const tgz = /** @type {string} */ (
    execFileSync(
      'npm',
      ['pack', `${spec.nodePackage}@${spec.nodeVersion}`, '--pack-destination', CACHE_DIR, '--silent'],
      { encoding: 'utf8' },
    )
      .trim()
      .split('\n')
      .pop()
  );
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  execFileSync('tar', ['-xzf', join(CACHE_DIR, tgz), '-C', dir, '--strip-components=1']);
  rmSync(join(CACHE_DIR, tgz));
  if (!existsSync(join(dir, 'include/node/node.h')))
    throw new Error(
      `release: ${spec.nodePackage}@${spec.nodeVersion} has no include/node: node-gyp cannot build against it`,
    );
  return dir;
}

/**
 * @param {import('./pack/targets.js').Target} target
 * @param {{ name: string, version: string }} pkg
 * @param {string[]} closure
 * @param {{ key: import('node:crypto').KeyObject, name: string } | null} signer
 */
function release(target, pkg, closure, signer) {
  const spec = TARGETS[target];
  const name = `outpost-${pkg.version}-${target}`;
  const stage = join(OUT_DIR, 'stage', name);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(join(stage, 'bin'), { recursive: true });
  const nodeDir = nodePackage(spec);
  copyFileSync(join(nodeDir, 'bin/node'), join(stage, 'bin/node'));
  chmodSync(join(stage, 'bin/node'), 0o755);
  for (const file of ['outpost.js', 'outpost.js.map']) copyFileSync(join(REPO, 'dist', file), join(stage, file));
  // The technician page's assets: the bundle serves them from page/ beside itself.
  cpSync(join(REPO, 'dist/page'), join(stage, 'page'), { recursive: true });
  copyPackages(REPO, closure, join(stage, 'node_modules'), target);
  buildAddons(join(stage, 'node_modules'), target, spec, nodeDir);
  const addonFiles = checkElfMachines(join(stage, 'node_modules'), target, spec);
  copyFileSync(join(REPO, 'board.json'), join(stage, 'board.json'));
  cpSync(join(REPO, 'boards'), join(stage, 'boards'), { recursive: true });
  copyFileSync(join(REPO, 'scripts/systemd/outpost.service'), join(stage, 'outpost.service'));
  for (const script of ['install.sh', 'ota-launch.sh']) {
    copyFileSync(join(REPO, 'scripts/pack', script), join(stage, script));
    chmodSync(join(stage, script), 0o755);
  }
  copyFileSync(join(REPO, 'README.md'), join(stage, 'README.md'));
  // The signer's public key, which install.sh trusts for later OTA updates (/etc/outpost/ota-keys/).
  if (signer) {
    mkdirSync(join(stage, 'ota-keys'));
    const pem = createPublicKey(signer.key).export({ type: 'spki', format: 'pem' });
    writeFileSync(join(stage, 'ota-keys', `${signer.name}.pem`), pem);
  }
  const manifest = {
    name: pkg.name,
    version: pkg.version,
    target,
    node: spec.nodeVersion,
    glibcMin: GLIBC_MIN,
    addons: RELEASE_ADDONS,
    addonFiles,
    storeFormat: storeFormatOf(REPO),
  };
  writeFileSync(join(stage, 'release.json'), `${JSON.stringify(manifest, null, 2)}\n`);
  // The bundle is ESM: without "type": "module" Node 20.11 (armv7) refuses it, and later 20.x re-parse it.
  writeFileSync(
    join(stage, 'package.json'),
    `${JSON.stringify({ name: pkg.name, version: pkg.version, private: true, type: 'module' }, null, 2)}\n`,
  );
  const tarball = join(OUT_DIR, `${name}.tar.gz`);
  execFileSync('tar', ['-C', join(OUT_DIR, 'stage'), '-czf', tarball, name]);
  rmSync(stage, { recursive: true });
  console.log(
    `release ${target}: ${tarball} (${(statSync(tarball).size / 2 ** 20).toFixed(1)} MiB; node ${spec.nodeVersion}; addons ${addonFiles.length})`,
  );
  return tarball;
}

const pkg = readJson(join(REPO, 'package.json'));
const args = process.argv.slice(2);
const signAt = args.indexOf('--sign-key');
// Read before the slow build, so a wrong key file fails in a second, not after minutes of compiling.
const signKeyFile = signAt >= 0 ? (args.splice(signAt, 2)[1] ?? '') : null;
const signer =
  signKeyFile === null ? null : { key: readSigningKey(signKeyFile), name: basename(signKeyFile).replace(/\.key$/, '') };
// Typed as targets already: the unknown ones are refused just below.
const wanted = /** @type {import('./pack/targets.js').Target[]} */ (args.length > 0 ? args : Object.keys(TARGETS));
const unknown = wanted.filter((t) => !(t in TARGETS));
if (unknown.length > 0) {
  console.error(`release: unknown target ${unknown.join(', ')}; known: ${Object.keys(TARGETS).join(', ')}`);
  process.exit(2);
}
execFileSync(process.execPath, [join(REPO, 'scripts/build.js'), 'firmware/main.ts'], { cwd: REPO, stdio: 'inherit' });
const roots = Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }).filter(isExternal);
const closure = runtimeClosure(REPO, roots);
mkdirSync(OUT_DIR, { recursive: true });
for (const target of wanted) {
  const tarball = release(target, pkg, closure, signer);
  if (signer) console.log(`signed ${target}: ${await signTarball(tarball, signer.key)}`);
}
rmSync(join(OUT_DIR, 'stage'), { recursive: true, force: true });
