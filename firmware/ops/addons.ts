import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

/** Written by scripts/release.js beside the bundle; absent when running from the repository. */
export const RELEASE_MANIFEST = 'release.json';

export interface ReleaseManifest {
  version: string;
  target: string;
  node: string;
  /** Packages with a native addon, loaded at start so a wrong build fails at once. */
  addons: string[];
}

/**
 * In an installed release, loads every native addon before anything starts. A sim board never opens a bus,
 * and a real one opens them only when its devices start, so an addon built for the wrong architecture or
 * C library would otherwise surface late, as one faulted device among many. Returns the manifest, or null
 * when not running from a release.
 */
export function checkReleaseAddons(bundleDir: string): ReleaseManifest | null {
  const file = join(bundleDir, RELEASE_MANIFEST);
  if (!existsSync(file)) return null;
  const manifest = JSON.parse(readFileSync(file, 'utf8')) as ReleaseManifest;
  const load = createRequire(join(bundleDir, 'outpost.js'));
  for (const addon of manifest.addons) {
    try {
      load(addon);
    } catch (err) {
      throw new Error(
        `${file}: native addon "${addon}" of this ${manifest.target} release does not load on this ${process.platform}-${process.arch} ` +
          `machine: ${(err as Error).message.split('\n')[0]} (the wrong release for this board, or glibc older than Raspberry Pi OS Bookworm's)`,
        { cause: err },
      );
    }
  }
  return manifest;
}
