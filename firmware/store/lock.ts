import { readFile, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { StoreError } from './errors.js';

const LOCK_FILE = 'LOCK';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * One writer per data directory. The lock names its owner's pid, so a lock left by a process that died
 * (power cut, SIGKILL) is taken over instead of keeping the gateway down.
 */
export async function acquireLock(dir: string): Promise<void> {
  const path = join(dir, LOCK_FILE);
  try {
    const pid = Number((await readFile(path, 'utf8')).trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && alive(pid)) {
      throw new StoreError('LOCKED', `${dir} is in use by process ${pid} (remove ${path} if that is wrong)`);
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await writeFile(path, `${process.pid}\n`);
}

export async function releaseLock(dir: string): Promise<void> {
  await unlink(join(dir, LOCK_FILE)).catch(() => undefined);
}
