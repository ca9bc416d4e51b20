import t from 'tap';
import { mkdirSync, writeFileSync } from 'node:fs';
import { ManualClock } from '../../support/manual-clock.js';
import { RingLog } from '../../../firmware/store/log.js';
import { crashState, materialize, SimFs, type DisabledSite } from '../../support/crash-fs.js';
import { explore, ROOT, WorkloadContext, type Journal } from '../../support/powercut.js';
import { WORKLOADS, rollsAcksQuota } from '../../support/powercut-workloads.js';
import { prng, testSeed } from '../../support/prng.js';
import { tempDir } from '../../support/tmp.js';

/**
 * Power-cut proof (issue 6): SIGKILL keeps the page cache, a power cut does not. Every recorded fs
 * operation of three workloads is a crash point; each yields several possible disk states, each is
 * recovered, checked, crashed again and checked again. Replay a failure with OUTPOST_SEED=<seed>.
 */
const STATES_MIN = 10_000;
/**
 * The exploration is a fixed amount of CPU work (about 30 s of it): on a shared two-core machine its wall
 * time follows the load, so the file gets more than tap's default 120 s rather than failing on a busy box.
 */
t.setTimeout(900_000);
const RANDOM_STATES_PER_CUT = 14;

t.test(`at least ${STATES_MIN} crash states over three workloads, no invariant broken`, async (t) => {
  let states = 0;
  for (const workload of WORKLOADS) {
    const seed = testSeed();
    const started = performance.now();
    const r = await explore(workload, { seed, randomStatesPerCut: RANDOM_STATES_PER_CUT, secondCrashesPerState: 1 });
    t.comment(
      `${workload.name}: ${r.ops} ops, ${r.states} states in ${((performance.now() - started) / 1000).toFixed(1)} s, ` +
        `OUTPOST_SEED=${seed}`,
    );
    t.same(r.violations.slice(0, 5), [], `${workload.name}: no violation (seed ${seed})`);
    t.ok(r.ops > 80, `${workload.name} recorded ${r.ops} operations`);
    states += r.states;
  }
  t.ok(states >= STATES_MIN, `${states} states explored`);
});

/** Every fsync, fdatasync and directory fsync the store makes, named by the function that makes it. */
const SYNC_SITES: DisabledSite[] = [
  { op: 'dsync', fn: 'LaneFiles.roll' }, // group commit: a new segment's writes are O_DSYNC
  { op: 'dsync', fn: 'recoverLane' }, // ... and so are those to the segment recovery reopens
  { op: 'syncdir', fn: 'syncLane' }, // a new segment's directory entry
  { op: 'syncdir', fn: 'RingLog.lane' }, // a new lane's directory entry
  { op: 'datasync', fn: 'CheckpointFile.write' }, // cursors and next seqs
  { op: 'syncdir', fn: 'RingLog.init' }, // lanes/ and the checkpoint file's entries
];

t.test('mutation check: removing any one of the store syncs is caught by the simulator', async (t) => {
  for (const site of SYNC_SITES) {
    let hits = 0;
    let caught: string | null = null;
    for (const workload of WORKLOADS) {
      const r = await explore(workload, {
        seed: 7,
        randomStatesPerCut: 4,
        secondCrashesPerState: 2,
        disabled: site,
        stopAtFirst: true,
      });
      hits += r.disabledHits;
      if (r.violations.length > 0) {
        caught = `${r.violations[0]!.workload}: ${r.violations[0]!.message}`;
        break;
      }
    }
    t.ok(hits > 0, `${site.op} in ${site.fn} is a real call site (${hits} calls skipped)`);
    t.ok(caught, `${site.op} in ${site.fn} removed → ${caught ?? 'NOT CAUGHT'}`);
  }
});

t.test('an fdatasync that fails with EIO is never taken as durable', async (t) => {
  for (const failAt of [3, 11, 20]) {
    const r = await explore(rollsAcksQuota, {
      seed: 1000 + failAt,
      randomStatesPerCut: 3,
      secondCrashesPerState: 1,
      failDatasyncAt: failAt,
    });
    t.same(r.violations.slice(0, 3), [], `EIO on datasync #${failAt}: ${r.states} states, no violation`);
  }
});

t.test('crash states written to real files recover exactly like the simulated ones', async (t) => {
  const rand = prng(99);
  const fs = new SimFs(ROOT);
  const clock = new ManualClock({ synced: false });
  const journal: Journal = { resolved: [], acks: [], attempted: new Set() };
  const opts = {
    segmentBytes: 4096,
    recordBytesMax: 1024,
    groupCommitBytesMax: 2048,
    quotaBytes: 64 * 1024,
    checkpointIntervalMs: 3_600_000,
    retentionIntervalMs: 3_600_000,
  };
  const log = await RingLog.open({ ...opts, ...rollsAcksQuota.opts, dir: ROOT, fs, clock });
  await rollsAcksQuota.run(new WorkloadContext(log, fs, clock, journal, rand, 'w'));
  await log.close();
  const contents = async (l: RingLog) => {
    const out: string[] = [];
    for (const [name, lane] of l.lanes) {
      for (const r of await lane.read(lane.ackedSeq() + 1, { recordsMax: 10_000 }))
        out.push(`${name}:${r.seq}:${r.body.length}`);
    }
    return out;
  };
  for (let i = 0; i < 25; i++) {
    const cut = Math.floor(rand() * (fs.ops.length + 1));
    const state = crashState(fs, cut, 'random', rand);
    const dir = tempDir(t);
    materialize(state, dir, (path, data) => (data ? writeFileSync(path, data) : mkdirSync(path, { recursive: true })));
    const simulated = await RingLog.open({ ...opts, ...rollsAcksQuota.opts, dir: ROOT, fs: state, clock });
    const real = await RingLog.open({ ...opts, ...rollsAcksQuota.opts, dir, clock });
    t.same(await contents(real), await contents(simulated), `cut ${cut}: same records from real files`);
    await simulated.close();
    await real.close();
  }
});
