// Real power cuts on ext4: the release's gateway runs in the field VM with its data disk behind qemu's
// blklogwrites driver while children publish QoS 1 through its hub; crash states are built from the write log
// (test/vm/replay.ts) and each is checked on the host: e2fsck's journal replay, the store's files read out with
// debugfs, the store's recovery in this process, every PUBACKed message there in order. Then the same with the
// store's fsyncs switched off: the rig must find the acknowledged messages that this loses. See test/vm/README.md.
import { spawnSync } from 'node:child_process';
import t from 'tap';
import { tempDir } from '../support/tmp.js';
import { checkRun, type RunCheck } from './powercut-check.js';
import { DATA_DISK_MIB, PowercutRig, STORE_SHAPE } from './powercut-workload.js';
import { isFlush, readWriteLog } from './replay.js';
import { vmImage } from './vm.js';

/** Image (cached), release build, one boot, two gateway starts under TCG, the states' checks. */
const POWERCUT_TEST_TIMEOUT_MS = 25 * 60_000;
/** Crash states per workload per CI run (the benchmark runs hundreds). */
const STATES_PER_RUN = 24;
/** How long the children publish in each workload: hundreds of group commits under TCG. */
const PUBLISH_MS = 20_000;
/** Children publishing at once, so group commits carry several records. */
const CHILDREN = 3;
/** Fixed, so a failing state can be rebuilt from the same log. */
const SEED = 13;

t.setTimeout(POWERCUT_TEST_TIMEOUT_MS);

if (process.env.OUTPOST_VM !== '1') {
  t.comment('power-cut VM skipped: set OUTPOST_VM=1 to replay real ext4 crash states (test/vm/README.md)');
  t.pass('skipped: OUTPOST_VM is not set');
  process.exit(0);
}
const missing = ['e2fsck', 'debugfs'].filter((tool) => spawnSync(tool, ['-V']).error !== undefined);
const built = missing.length > 0 ? { skip: `${missing.join(', ')} missing (e2fsprogs)` } : await vmImage();
if ('skip' in built) {
  t.comment(`power-cut VM skipped: ${built.skip}`);
  // CI installs everything the VM needs: a skip there is a broken image build, not a missing piece.
  if (process.env.OUTPOST_VM_REQUIRED === '1') t.fail(`power-cut VM required (OUTPOST_VM_REQUIRED=1): ${built.skip}`);
  else t.pass('skipped: no VM on this machine');
  process.exit(0);
}

function summary(r: RunCheck): string {
  const owed = r.verdicts.map((v) => v.required);
  return (
    `${r.states} states, ${r.violations} violations; owed per state ${Math.min(...owed)}..${Math.max(...owed)}; ` +
    `recovery cut ${r.tornTails} torn tails, saw ${r.corrupt} corrupt ranges; e2fsck repaired ${r.fsckRepaired} states`
  );
}

t.test('power cuts on real ext4 (blklogwrites crash states of the field VM data disk)', async (t) => {
  const work = tempDir(t, 'outpost-powercut-');
  const progress = (line: string): void => t.comment(line);
  const rig = await PowercutRig.start(built.image, work, CHILDREN, progress);
  t.teardown(() => rig.close());
  const synced = await rig.workload('synced', PUBLISH_MS, false);
  const unsynced = await rig.workload('unsynced', PUBLISH_MS, true);
  // The power cut: qemu is killed, so the log ends where the disk stopped.
  await rig.close();
  const log = await readWriteLog(rig.logPath, (DATA_DISK_MIB * 1024 * 1024) / 512);
  const flushes = log.entries.filter(isFlush).length;
  t.comment(`write log: ${log.entries.length} entries, ${flushes} flushes`);
  const opts = { shape: STORE_SHAPE, workDir: work, progress };

  t.test('the store as shipped: every state opens and holds every PUBACKed message, in order', async (t) => {
    t.ok(synced.acked > 0, `the children saw ${synced.acked} PUBACKs`);
    const r = await checkRun(log, rig.basePath, synced, {
      ...opts,
      count: STATES_PER_RUN,
      seed: SEED,
      endByte: unsynced.startLogByte,
    });
    t.comment(summary(r));
    t.ok(r.states >= 20, `${r.states} crash states checked`);
    t.ok(
      r.verdicts.some((v) => v.required > 0),
      'some states owe PUBACKed messages (the check has something to find)',
    );
    t.same(
      r.verdicts.filter((v) => v.problems.length > 0),
      [],
      'no state lost, reordered or invented a record',
    );
  });

  t.test("mutation: with the store's fsyncs off, the rig finds lost PUBACKed messages", async (t) => {
    t.ok(unsynced.acked > 0, `the children saw ${unsynced.acked} PUBACKs`);
    const r = await checkRun(log, rig.basePath, unsynced, { ...opts, count: STATES_PER_RUN / 2, seed: SEED });
    t.comment(summary(r));
    const lost = r.verdicts.filter((v) => v.problems.some((p) => /PUBACKed messages lost/.test(p)));
    t.ok(lost.length > 0, `${lost.length} of ${r.states} states lost acknowledged messages`);
  });
});
