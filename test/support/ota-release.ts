import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes, sign, createHash, type KeyObject } from 'node:crypto';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { canonicalManifest, type UpdateManifest } from '../../firmware/ota/manifest.js';
import type { ReleaseLayout } from '../../firmware/ota/slots.js';
import { STORE_FORMAT } from '../../firmware/store/format.js';

/**
 * Release tarballs shaped as `npm run release` makes them (an `outpost-<version>-<target>/` folder with
 * bin/node, outpost.js, release.json, package.json), small or padded to a size, signed with a fresh ed25519
 * key the way scripts/ota-sign.js signs (firmware/ota/manifest.ts's canonical encoding), and a slot layout
 * with a running release, for the update tests and the benchmark.
 */

const run = promisify(execFile);
export const TEST_TARGET = 'linux-x64';

export interface SigningKey {
  publicKey: KeyObject;
  privateKey: KeyObject;
}

export function signingKey(): SigningKey {
  return generateKeyPairSync('ed25519');
}

export interface BuiltRelease {
  tarball: string;
  bytes: number;
  sha256: string;
}

/** Builds `outpost-<version>-<target>.tar.gz` in `dir`; `paddingBytes` of random data make it that much larger. */
export async function buildRelease(
  dir: string,
  version: string,
  paddingBytes = 0,
  target = TEST_TARGET,
): Promise<BuiltRelease> {
  const top = `outpost-${version}-${target}`;
  const root = join(dir, top);
  await mkdir(join(root, 'bin'), { recursive: true });
  await writeFile(join(root, 'bin', 'node'), '#!/bin/sh\n');
  await writeFile(join(root, 'outpost.js'), `// outpost ${version}\n`);
  await writeFile(join(root, 'package.json'), JSON.stringify({ name: 'outpost', version }));
  await writeFile(join(root, 'release.json'), JSON.stringify({ version, target, storeFormat: STORE_FORMAT }));
  if (paddingBytes > 0) await writeFile(join(root, 'padding.bin'), randomBytes(paddingBytes));
  const tarball = join(dir, `${top}.tar.gz`);
  await run('tar', ['-C', dir, '-czf', tarball, top]);
  const bytes = await readFile(tarball);
  return { tarball, bytes: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** A manifest for `release` at `url`, signed by `key` (fields in `change` are applied before signing). */
export function signedManifest(
  key: SigningKey,
  version: string,
  release: { bytes: number; sha256: string },
  url: string,
  change: Partial<UpdateManifest> = {},
): UpdateManifest {
  const { sha256, bytes } = release;
  const unsigned = { version, target: TEST_TARGET, url, sha256, bytes, storeFormat: STORE_FORMAT, ...change };
  const signature = sign(null, canonicalManifest(unsigned), key.privateKey).toString('base64');
  return { ...unsigned, signature: change.signature ?? signature };
}

/** `<root>/releases/<version>/` with `current` pointing at it, and the OTA state folder under `dataDir`. */
export async function slotLayout(root: string, dataDir: string, running: string): Promise<ReleaseLayout> {
  const releasesDir = join(root, 'releases');
  await mkdir(join(releasesDir, running, 'bin'), { recursive: true });
  const releaseJson = JSON.stringify({ version: running, target: TEST_TARGET });
  await writeFile(join(releasesDir, running, 'release.json'), releaseJson);
  await symlink(running, join(releasesDir, 'current'));
  return { releasesDir, stateDir: join(dataDir, 'ota') };
}
