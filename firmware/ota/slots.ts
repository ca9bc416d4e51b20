import { promises as fsp } from 'node:fs';
import { basename, join } from 'node:path';

/**
 * Where the releases live. install.sh lays them out as
 *
 *     <prefix>/launch                 the stable launcher (ota-launch.sh): root's, never inside a slot
 *     <prefix>/current -> releases/current   a fixed link, so the unit and the CLI name one path
 *     <prefix>/releases/<version>/    one unpacked release tarball each
 *     <prefix>/releases/current -> <version>
 *     <prefix>/releases/previous -> <version>
 *
 * The links that change sit in `releases/`, the only folder the service may write (ReadWritePaths=), so an
 * update never touches the launcher that decides on rollbacks.
 */
export interface ReleaseLayout {
  /** `/opt/outpost/releases`. */
  releasesDir: string;
  /** The OTA state the launcher reads: `/var/lib/outpost/ota`. */
  stateDir: string;
}

/** The file-system calls a switch makes, one interface so the power-cut test can stop the updater at each. */
export interface SlotFs {
  symlink(target: string, path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** fsync of a directory (or a file): makes the entries made in it so far survive a power cut. */
  syncPath(path: string): Promise<void>;
  writeFile(path: string, data: string): Promise<void>;
  rm(path: string): Promise<void>;
}

export const realSlotFs: SlotFs = {
  symlink: (target, path) => fsp.symlink(target, path),
  rename: (from, to) => fsp.rename(from, to),
  async syncPath(path) {
    const handle = await fsp.open(path, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  async writeFile(path, data) {
    const handle = await fsp.open(path, 'w', 0o644);
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
  },
  rm: (path) => fsp.rm(path, { recursive: true, force: true }),
};

/** The version a slot link points at, or null when the link is missing. */
export async function slotVersion(layout: ReleaseLayout, slot: 'current' | 'previous'): Promise<string | null> {
  try {
    return basename(await fsp.readlink(join(layout.releasesDir, slot)));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}

/**
 * Points `slot` at `version` with one rename(2) over the old link, so a reader (the launcher, after a power
 * cut) sees the old link or the new one, never none. The new link is made under a temporary name first and
 * its directory synced: Node cannot open a symlink itself for fsync (no O_PATH), and on ext4 the directory's
 * fsync commits the journal transaction that holds the new link's inode with its entry. The second sync
 * makes the rename durable before anything (a restart) relies on it. Links are relative, so the release
 * folder can be mounted elsewhere (the install test's namespace) and still resolve.
 */
export async function pointSlot(
  layout: ReleaseLayout,
  slot: 'current' | 'previous',
  version: string,
  fs: SlotFs = realSlotFs,
): Promise<void> {
  const link = join(layout.releasesDir, slot);
  const temp = `${link}.tmp`;
  await fs.rm(temp);
  await fs.symlink(version, temp);
  await fs.syncPath(layout.releasesDir);
  await fs.rename(temp, link);
  await fs.syncPath(layout.releasesDir);
}

/**
 * Makes `version` (already complete and synced under releases/) current, and the release that was current
 * the previous one. `previous` moves first: at every instant `current` names a whole release, and once the
 * switch is visible `previous` already names the release to roll back to.
 */
export async function switchRelease(
  layout: ReleaseLayout,
  version: string,
  fs: SlotFs = realSlotFs,
): Promise<{ previous: string | null }> {
  const previous = await slotVersion(layout, 'current');
  if (previous !== null && previous !== version) await pointSlot(layout, 'previous', previous, fs);
  await pointSlot(layout, 'current', version, fs);
  return { previous };
}

/**
 * Removes every release folder but the current and previous ones (and leftovers of cut unpacks): a
 * release is ~45 MB and an SD card is small. Failures are reported, not thrown: the update itself is done.
 */
export async function pruneReleases(layout: ReleaseLayout, fs: SlotFs = realSlotFs): Promise<string[]> {
  const slots = [await slotVersion(layout, 'current'), await slotVersion(layout, 'previous')];
  const keep = new Set([...slots, 'current', 'previous']);
  const removed: string[] = [];
  for (const entry of await fsp.readdir(layout.releasesDir)) {
    if (keep.has(entry)) continue;
    await fs.rm(join(layout.releasesDir, entry));
    removed.push(entry);
  }
  return removed;
}
