import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from './errors.js';

/**
 * One writer per data directory. Node has no flock(2), so the lock is a file created exclusively (O_EXCL)
 * that names its holder by what the kernel cannot reuse within a boot: the boot id plus the holder's pid
 * AND its start time (clock ticks since boot, /proc/<pid>/stat field 22). A bare pid is not enough: after
 * a power cut a Pi boots into the same few hundred pids, so a stale lock would name a live stranger (often
 * pid 1) and keep the gateway down. A lock whose holder is gone, restarted or from another boot is taken over.
 */

const LOCK_FILE = 'LOCK';
/** Takeovers tried before giving up: each loses only to a process that created the lock meanwhile. */
const TAKEOVER_ATTEMPTS_MAX = 3;
/** The stat field holding the process start time (proc(5), "starttime"), 1-based as the man page counts. */
const STAT_START_TIME_FIELD = 22;

interface Holder {
  pid: number;
  bootId: string;
  startTime: string;
}

/**
 * Where /proc/sys is hidden (systemd's ProcSubset=pid, some containers) the boot id is "unknown": the holder is
 * then told apart by pid and start time alone, which still never mistakes a reused pid for the holder within
 * one boot. Refusing to open the log there would keep the gateway down.
 */
async function bootId(): Promise<string> {
  try {
    return (await readFile('/proc/sys/kernel/random/boot_id', 'utf8')).trim();
  } catch {
    return 'unknown';
  }
}

/** The start time of `pid`, or null when there is no such process. */
async function startTimeOf(pid: number): Promise<string | null> {
  let stat: string;
  try {
    stat = await readFile(`/proc/${pid}/stat`, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
  // Field 2 is the command name in parentheses and may itself hold spaces or ')': count from the last ')'.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[STAT_START_TIME_FIELD - 3] ?? null;
}

async function self(): Promise<Holder> {
  const startTime = await startTimeOf(process.pid);
  if (startTime === null) throw new StoreError('IO', `cannot read /proc/${process.pid}/stat for the data dir lock`);
  return { pid: process.pid, bootId: await bootId(), startTime };
}

/** The holder named in the lock file; null when it is unreadable (torn by a power cut, or an old bare pid). */
async function readHolder(path: string): Promise<Holder | null | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw err;
  }
  try {
    const h = JSON.parse(text) as Partial<Holder>;
    const valid = Number.isSafeInteger(h.pid) && typeof h.bootId === 'string' && typeof h.startTime === 'string';
    return valid ? (h as Holder) : null;
  } catch {
    return null;
  }
}

const same = (a: Holder, b: Holder) => a.pid === b.pid && a.bootId === b.bootId && a.startTime === b.startTime;

async function isLive(holder: Holder, me: Holder): Promise<boolean> {
  if (holder.bootId !== me.bootId) return false;
  return (await startTimeOf(holder.pid)) === holder.startTime;
}

export async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  const me = await self();
  for (let attempt = 0; attempt < TAKEOVER_ATTEMPTS_MAX; attempt += 1) {
    try {
      await writeFile(path, `${JSON.stringify(me)}\n`, { flag: 'wx' });
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readHolder(path);
    if (holder === 'gone') continue;
    // This process opened the directory before and has not closed it: the lock is already ours.
    if (holder !== null && same(holder, me)) return;
    if (holder !== null && (await isLive(holder, me))) {
      throw new StoreError('LOCKED', `${dir} is in use by process ${holder.pid} (${path})`);
    }
    await unlink(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
  }
  throw new StoreError('LOCKED', `${dir}: another process keeps creating ${path}`);
}

/** Removes the lock if it is still ours; a process that took it over meanwhile keeps it. */
export async function releaseLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  const holder = await readHolder(path).catch(() => null);
  if (holder === null || holder === 'gone' || !same(holder, await self())) return;
  await unlink(path).catch(() => undefined);
}
