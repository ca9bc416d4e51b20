// `npm run bench -- vm-powercut`: real power cuts on ext4 at scale. The release's gateway runs in the field VM
// (Debian's kernel under qemu) with its data disk behind blklogwrites while children publish QoS 1 through its
// hub; hundreds of crash states are built from the write log and each is checked on the host (e2fsck's journal
// replay, debugfs, the store's recovery). The peer in the same run is the store with its fsyncs switched off
// (the test-only mutation), which must lose acknowledged messages where the shipped store loses none. The last
// line is `{"states":n,"violations":n,"secs":n}` for the shipped store. See test/vm/README.md.
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkRun, type RunCheck } from '../test/vm/powercut-check.js';
import { DATA_DISK_MIB, PowercutRig, STORE_SHAPE, type WorkloadRun } from '../test/vm/powercut-workload.js';
import { isFlush, readWriteLog } from '../test/vm/replay.js';
import { vmImage } from '../test/vm/vm.js';
import { envInt, fmt, formatTable, type BenchModule } from './harness.js';

/** Crash states of the shipped store; OUTPOST_BENCH_VM_POWERCUT_STATES overrides. */
const STATES_DEFAULT = 240;
/** Crash states of the no-fsync mutation: enough to show it loses acknowledged messages. */
const MUTATION_STATES = 40;
/** Publishing time of the shipped store's workload: about a thousand group commits under TCG. */
const PUBLISH_MS = 60_000;
/** The mutation's workload: shorter than ext4's 30 s dirty-page expiry, so most of it is never written back. */
const MUTATION_PUBLISH_MS = 20_000;
const CHILDREN = 3;
/** Verdicts with problems printed in full (the count is always complete). */
const VIOLATIONS_PRINTED_MAX = 10;

function row(name: string, r: RunCheck, acked: number): string[] {
  const lost = r.verdicts.filter((v) => v.problems.some((p) => /PUBACKed messages lost/.test(p))).length;
  const owed = r.verdicts.map((v) => v.required);
  return [
    name,
    fmt(acked),
    fmt(r.states),
    fmt(r.violations),
    fmt(lost),
    `${Math.min(...owed)}..${Math.max(...owed)}`,
    fmt(r.tornTails),
    fmt(r.fsckRepaired),
  ];
}

async function run(): Promise<void> {
  const statesTarget = envInt('OUTPOST_BENCH_VM_POWERCUT_STATES', STATES_DEFAULT);
  const missing = ['e2fsck', 'debugfs'].filter((tool) => spawnSync(tool, ['-V']).error !== undefined);
  const built = missing.length > 0 ? { skip: `${missing.join(', ')} missing (e2fsprogs)` } : await vmImage();
  if ('skip' in built) {
    console.log(`vm-powercut: skipped: ${built.skip}`);
    return;
  }
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'outpost-bench-vm-powercut-'));
  const progress = (line: string): void => console.log(line);
  try {
    const rig = await PowercutRig.start(built.image, work, CHILDREN, progress);
    let synced: WorkloadRun, unsynced: WorkloadRun;
    try {
      synced = await rig.workload('synced', PUBLISH_MS, false);
      unsynced = await rig.workload('unsynced', MUTATION_PUBLISH_MS, true);
    } finally {
      await rig.close();
    }
    const log = await readWriteLog(rig.logPath, (DATA_DISK_MIB * 1024 * 1024) / 512);
    const flushes = log.entries.filter(isFlush).length;
    console.log(`vm-powercut: write log of ${fmt(log.entries.length)} entries, ${fmt(flushes)} flushes`);
    const opts = { shape: STORE_SHAPE, workDir: work, progress };
    const shipped = await checkRun(log, rig.basePath, synced, {
      ...opts,
      count: statesTarget,
      seed: 1,
      endByte: unsynced.startLogByte,
    });
    const mutation = await checkRun(log, rig.basePath, unsynced, { ...opts, count: MUTATION_STATES, seed: 2 });
    const secs = (performance.now() - started) / 1000;
    console.log(
      formatTable(
        [
          'store',
          'PUBACKs',
          'states',
          'violations',
          'states with acked loss',
          'owed per state',
          'torn tails cut',
          'e2fsck repaired',
        ],
        [row('shipped (fsync)', shipped, synced.acked), row('mutation (no fsync)', mutation, unsynced.acked)],
      ),
    );
    for (const v of shipped.verdicts.filter((x) => x.problems.length > 0).slice(0, VIOLATIONS_PRINTED_MAX)) {
      console.log(JSON.stringify(v));
    }
    if (shipped.violations > 0) process.exitCode = 1;
    console.log(JSON.stringify({ states: shipped.states, violations: shipped.violations, secs: Math.round(secs) }));
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

const vmPowercut: BenchModule = {
  run,
  child: async (role) => {
    throw new Error(`vm-powercut bench has no child role "${role}"`);
  },
};
export default vmPowercut;
