import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, promises as fsp } from 'node:fs';
import { join } from 'node:path';
import type { RefusalReason, UpdateManifest } from './manifest.js';
import { writePending } from './pending.js';
import { pruneReleases, realSlotFs, slotVersion, switchRelease, type ReleaseLayout, type SlotFs } from './slots.js';

/** Why applying failed: `wrong-hash` is a refusal like the manifest's; the others are this gateway's fault. */
export type ApplyFailure = Extract<RefusalReason, 'wrong-hash'> | 'bad-release' | 'io';

export class ApplyError extends Error {
  constructor(
    readonly reason: ApplyFailure,
    message: string,
    options?: ErrorOptions,
  ) {
    super(message, options);
  }
}

export interface ApplyOptions {
  /** How long the new release has to prove itself before the launcher rolls it back (`updateHealthSecs`). */
  healthSecs: number;
  /** The file-system calls of the switch; the power-cut test records and interrupts them. */
  fs?: SlotFs;
  /** Unpacked files owned by this uid/gid (root's `outpost update`: the service must be able to prune them). */
  owner?: { uid: number; gid: number };
}

export interface Applied {
  version: string;
  /** The release that was current before, now `previous`: the one a rollback returns to. */
  previous: string | null;
  /** Release folders pruned after the switch. */
  pruned: string[];
}

/** A release tarball unpacks in seconds; tar still running after this is stuck on a dying SD card. */
const UNPACK_TIMEOUT_MS = 5 * 60_000;
/** What tar may say on failure that is kept for the error message. */
const TAR_STDERR_CHARS_MAX = 2000;
/** Files a release must hold to be runnable (checked before it may become current). */
const RELEASE_FILES = ['bin/node', 'outpost.js', 'release.json', 'package.json'];

/**
 * Applies a downloaded, verified-manifest release: checks the tarball's size and SHA-256 against the manifest
 * (`wrong-hash`), unpacks it into `releases/<version>.partial`, checks it is the release the manifest names,
 * syncs every file and folder, renames it to `releases/<version>`, records the update as pending (the launcher
 * counts its starts from there) and switches `current` to it. The caller restarts the service. A cut at any
 * point leaves `current` on a whole release: before the switch the old one, with a pending record the
 * launcher discards since `current` does not name it.
 */
export async function applyRelease(
  tarballPath: string,
  manifest: UpdateManifest,
  layout: ReleaseLayout,
  options: ApplyOptions,
): Promise<Applied> {
  const fs = options.fs ?? realSlotFs;
  await checkTarball(tarballPath, manifest);
  const running = await slotVersion(layout, 'current');
  if (running === manifest.version) {
    throw new ApplyError('bad-release', `${manifest.version} is already the current release`);
  }
  await pruneReleases(layout, fs);
  const partial = join(layout.releasesDir, `${manifest.version}.partial`);
  await fs.rm(partial);
  await fsp.mkdir(partial);
  await unpack(tarballPath, partial);
  await checkRelease(partial, manifest);
  if (options.owner) await chownTree(partial, options.owner);
  await syncTree(partial, fs);
  const dir = join(layout.releasesDir, manifest.version);
  await fs.rename(partial, dir);
  await fs.syncPath(layout.releasesDir);
  const pending = { version: manifest.version, from: running ?? '', healthSecs: options.healthSecs };
  await writePending(layout.stateDir, pending, fs);
  if (options.owner) await chownTree(layout.stateDir, options.owner);
  const { previous } = await switchRelease(layout, manifest.version, fs);
  return { version: manifest.version, previous, pruned: await pruneReleases(layout, fs) };
}

/** Streams the tarball through SHA-256 (never buffered: a release is tens of MB on a 512 MB board). */
async function checkTarball(path: string, manifest: UpdateManifest): Promise<void> {
  const hash = createHash('sha256');
  let bytes = 0;
  try {
    for await (const chunk of createReadStream(path)) {
      hash.update(chunk as Buffer);
      bytes += (chunk as Buffer).length;
      if (bytes > manifest.bytes) break;
    }
  } catch (err) {
    throw new ApplyError('io', `${path}: ${(err as Error).message}`, { cause: err });
  }
  if (bytes !== manifest.bytes) {
    const size = bytes > manifest.bytes ? 'more than' : bytes;
    throw new ApplyError('wrong-hash', `${path}: ${size} bytes, the manifest says ${manifest.bytes}`);
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== manifest.sha256) {
    throw new ApplyError('wrong-hash', `${path}: SHA-256 ${sha256}, the manifest says ${manifest.sha256}`);
  }
}

/**
 * GNU tar: `--strip-components=1` drops the `outpost-<version>-<target>/` folder, `--no-same-owner` keeps
 * the builder's uid out of a root unpack, and tar refuses `..` members by itself. The hash was checked first,
 * so only a signed tarball gets here.
 */
function unpack(tarball: string, into: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const args = ['-xzf', tarball, '-C', into, '--strip-components=1', '--no-same-owner'];
    const tar = spawn('tar', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    tar.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-TAR_STDERR_CHARS_MAX)));
    const timer = setTimeout(() => tar.kill('SIGKILL'), UNPACK_TIMEOUT_MS);
    tar.on('error', (err) => {
      clearTimeout(timer);
      reject(new ApplyError('io', `tar: ${err.message}`, { cause: err }));
    });
    tar.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new ApplyError('bad-release', `tar -xzf ${tarball}: ${signal ?? `exit ${code}`}: ${stderr.trim()}`));
    });
  });
}

async function checkRelease(dir: string, manifest: UpdateManifest): Promise<void> {
  for (const file of RELEASE_FILES) {
    await fsp.access(join(dir, file)).catch(() => {
      throw new ApplyError('bad-release', `the tarball has no ${file}: not an outpost release`);
    });
  }
  const text = await fsp.readFile(join(dir, 'release.json'), 'utf8');
  const release = JSON.parse(text) as { version?: unknown; target?: unknown; storeFormat?: unknown };
  if (release.version !== manifest.version || release.target !== manifest.target) {
    const says = `${String(release.version)} for ${String(release.target)}`;
    const wanted = `${manifest.version} for ${manifest.target}`;
    throw new ApplyError('bad-release', `release.json says ${says}, the manifest ${wanted}`);
  }
  // The manifest's format was what verifyManifest held against the running log: the release must be that one.
  if (release.storeFormat !== manifest.storeFormat) {
    throw new ApplyError(
      'bad-release',
      `release.json says ring log format ${String(release.storeFormat)}, the ` +
        `signed manifest ${manifest.storeFormat}: the format check was made for another release`,
    );
  }
}

async function walk(dir: string, visit: (path: string, isDir: boolean) => Promise<void>): Promise<void> {
  for (const entry of await fsp.readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) await walk(path, visit);
    else await visit(path, false);
  }
  await visit(dir, true);
}

async function chownTree(dir: string, owner: { uid: number; gid: number }): Promise<void> {
  await walk(dir, (path) => fsp.lchown(path, owner.uid, owner.gid));
}

/** Every file's data and every folder's entries, children before parents: the rename publishes a whole tree. */
async function syncTree(dir: string, fs: SlotFs): Promise<void> {
  await walk(dir, async (path) => {
    if (!(await fsp.lstat(path)).isSymbolicLink()) await fs.syncPath(path);
  });
}
