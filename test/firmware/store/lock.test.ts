import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RingLog } from '../../../firmware/store/log.js';
import { bundleForChild } from '../../support/bundle.js';
import { tempDir } from '../../support/tmp.js';

const SMALL = {
  segmentBytes: 64 * 1024,
  quotaBytes: 4 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
};
const HOLDER = fileURLToPath(new URL('../../support/lock-holder.ts', import.meta.url));
const bootId = () => readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
const startTime = (pid: number) => {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]!;
};

async function opens(dir: string): Promise<boolean> {
  const log = await RingLog.open({ dir, ...SMALL });
  await log.close();
  return true;
}

t.test('a lock naming a live pid that is not its holder is taken over (pid 1 after a power cut)', async (t) => {
  const dir = tempDir(t);
  await opens(dir);
  writeFileSync(join(dir, 'LOCK'), '1\n');
  t.ok(await opens(dir), 'a bare pid (the old format) names nobody for sure: taken over');
  // pid 1 is alive now, but it is not the process that wrote this: its start time differs.
  writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid: 1, bootId: bootId(), startTime: '999999999999' }));
  t.ok(await opens(dir), 'same boot, live pid, other start time: taken over');
  writeFileSync(join(dir, 'LOCK'), '{"pid": 12');
  t.ok(await opens(dir), 'a lock torn by a power cut: taken over');
});

t.test('a lock from another boot is taken over even when its pid and start time match a live process', async (t) => {
  const dir = tempDir(t);
  const otherBoot = '00000000-0000-0000-0000-000000000000';
  writeFileSync(join(dir, 'LOCK'), JSON.stringify({ pid: 1, bootId: otherBoot, startTime: startTime(1) }));
  t.ok(await opens(dir), 'taken over');
});

t.test('a live holder keeps the lock; once it is SIGKILLed the lock is taken over', async (t) => {
  const dir = tempDir(t);
  const bundle = await bundleForChild(HOLDER, tempDir(t));
  const child = spawn(process.execPath, [bundle, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => void child.kill('SIGKILL'));
  await once(child.stdout, 'data');
  const inUse = new RegExp(`in use by process ${child.pid}`);
  await t.rejects(RingLog.open({ dir, ...SMALL }), { code: 'LOCKED', message: inUse });
  child.kill('SIGKILL');
  await once(child, 'exit');
  t.ok(JSON.parse(readFileSync(join(dir, 'LOCK'), 'utf8')).pid === child.pid, 'the dead holder left its lock behind');
  t.ok(await opens(dir), 'taken over from the dead holder');
});

t.test('close() leaves a lock that another process took over', async (t) => {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir, ...SMALL });
  const other = JSON.stringify({ pid: 1, bootId: bootId(), startTime: startTime(1) });
  writeFileSync(join(dir, 'LOCK'), other);
  await log.close();
  t.equal(readFileSync(join(dir, 'LOCK'), 'utf8'), other, 'not ours any more: not removed');
});
