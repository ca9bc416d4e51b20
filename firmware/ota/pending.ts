import { promises as fsp } from 'node:fs';
import { dirname, join } from 'node:path';
import { realSlotFs, type SlotFs } from './slots.js';

/**
 * The OTA state in `<dataDir>/ota/`, shared with the launcher (scripts/pack/ota-launch.sh), which is a
 * POSIX shell script so that the rollback decision never runs the new release's code. Hence plain
 * `key=value` lines a `sed` reads:
 *
 *   pending   version=, from=, healthSecs=   an update switched to but not committed yet
 *   boots     one integer                    starts of the pending release (the launcher counts them)
 *   result    JSON {state, version, from, reason, at}   the last update's outcome, for the reporter
 */
export interface Pending {
  version: string;
  /** The release it replaced ('' on an install that had none). */
  from: string;
  healthSecs: number;
}

export interface UpdateResult {
  state: 'committed' | 'rolled-back';
  version: string;
  from: string;
  /** Why a rollback happened: `exited`, `crash-loop`, `watchdog`, `health-timeout`, with the details. */
  reason: string;
  /** Wall time (ISO 8601) when it was recorded: what a person reads, nothing computes with it. */
  at: string;
}

export const PENDING_FILE = 'pending';
export const BOOTS_FILE = 'boots';
export const RESULT_FILE = 'result';

/**
 * Written whole under a temporary name, synced, renamed: the launcher reads an old record or a new one. A state
 * folder made here has its own entry synced into its parent first: else a power cut may lose the whole folder
 * (a file system need not keep an unsynced mkdir) and with it the pending record, while the synced switch
 * survives, and the new release would run with nothing to roll it back (test/firmware/ota/crash-states.test.ts).
 */
async function writeAtomic(dir: string, name: string, text: string, fs: SlotFs): Promise<void> {
  const made = await fsp.mkdir(dir, { recursive: true });
  if (made !== undefined) {
    for (let d = dir; ; d = dirname(d)) {
      await fs.syncPath(dirname(d));
      if (d === made) break;
    }
  }
  const temp = join(dir, `${name}.tmp`);
  await fs.writeFile(temp, text);
  await fs.rename(temp, join(dir, name));
  await fs.syncPath(dir);
}

export async function writePending(stateDir: string, pending: Pending, fs: SlotFs = realSlotFs): Promise<void> {
  await fs.rm(join(stateDir, BOOTS_FILE));
  const text = `version=${pending.version}\nfrom=${pending.from}\nhealthSecs=${pending.healthSecs}\n`;
  await writeAtomic(stateDir, PENDING_FILE, text, fs);
}

export async function readPending(stateDir: string): Promise<Pending | null> {
  let text: string;
  try {
    text = await fsp.readFile(join(stateDir, PENDING_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  const value = (key: string) => new RegExp(`^${key}=(.*)$`, 'm').exec(text)?.[1] ?? '';
  return { version: value('version'), from: value('from'), healthSecs: Number(value('healthSecs')) };
}

export async function readResult(stateDir: string): Promise<UpdateResult | null> {
  try {
    return JSON.parse(await fsp.readFile(join(stateDir, RESULT_FILE), 'utf8')) as UpdateResult;
  } catch {
    return null;
  }
}

/**
 * Commits the pending update: the result first, then the pending record goes. A cut between the two leaves
 * a pending record and a `committed` result for the same version, which the launcher reads as committed.
 */
export async function commitPending(stateDir: string, pending: Pending, fs: SlotFs = realSlotFs): Promise<void> {
  const at = new Date().toISOString();
  const result: UpdateResult = { state: 'committed', version: pending.version, from: pending.from, reason: '', at };
  await writeAtomic(stateDir, RESULT_FILE, `${JSON.stringify(result)}\n`, fs);
  await fs.rm(join(stateDir, PENDING_FILE));
  await fs.rm(join(stateDir, BOOTS_FILE));
  await fs.syncPath(stateDir);
}
