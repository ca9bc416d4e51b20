import { ManualClock } from './manual-clock.js';
import { RingLog } from '../../firmware/store/log.js';
import type { RingLogOptions } from '../../firmware/store/options.js';
import { parseRecord } from '../../firmware/store/record.js';
import { crashState, SimFs, type DisabledSite, type Fate } from './crash-fs.js';
import { prng } from './prng.js';
import { walkLane } from './read-lane.js';

/**
 * The power-cut simulator: run a workload on a recording fs, then for every op index build possible
 * post-power-loss states, recover each, check the invariants, crash again during/after recovery and
 * check again. A violation names the workload, seed, cut and fate so it can be replayed.
 */
export const ROOT = '/data';
const BASE_OPTS: Partial<RingLogOptions> = {
  dir: ROOT,
  segmentBytes: 4096,
  recordBytesMax: 1024,
  groupCommitBytesMax: 2048,
  quotaBytes: 64 * 1024,
  checkpointIntervalMs: 3_600_000, // timers never fire: checkpoints are driven by the workload,
  retentionIntervalMs: 3_600_000, // and the retention pass runs where the workload calls it (maintenancePass),
  // which keeps every run's op sequence reproducible
  ttlSecs: 0,
};

/** Everything the verifier needs to know about one run of a workload (or of a recovery). */
export interface Journal {
  /** An append that resolved: acknowledged durable once `at` ops had happened. */
  resolved: Array<{ lane: string; seq: number; body: string; at: number; expiresAtStoreMs: number }>;
  /** lane.ack(seq) issued once `at` ops had happened. */
  acks: Array<{ lane: string; seq: number; at: number }>;
  /** Every body ever attempted: a record on disk must be one of these, byte for byte. */
  attempted: Set<string>;
}

export interface Workload {
  name: string;
  opts: Partial<RingLogOptions>;
  lanes: string[];
  run(ctx: WorkloadContext): Promise<void>;
}

export class WorkloadContext {
  private counter = 0;
  constructor(
    readonly log: RingLog,
    readonly fs: SimFs,
    readonly clock: ManualClock,
    readonly journal: Journal,
    readonly rand: () => number,
    readonly tag: string,
  ) {}

  async append(laneName: string, ttlSecs = 0): Promise<void> {
    const lane = await this.log.lane(laneName);
    const body = `${this.tag}:${laneName}:${this.counter++}:${'b'.repeat(Math.floor(this.rand() * 300))}`;
    this.journal.attempted.add(body);
    const expiresAtStoreMs = ttlSecs === 0 ? 0 : this.log.storeNowMs() + ttlSecs * 1000;
    try {
      const seq = await lane.append({ body: Buffer.from(body), ttlSecs });
      this.journal.resolved.push({ lane: laneName, seq, body, at: this.fs.ops.length, expiresAtStoreMs });
    } catch {
      // A failed append (injected EIO, quota) is not acknowledged: nothing to check for it.
    }
  }

  ack(laneName: string, seq: number): void {
    const lane = this.log.lanes.get(laneName);
    if (!lane) return;
    lane.ack(seq);
    this.journal.acks.push({ lane: laneName, seq: lane.ackedSeq(), at: this.fs.ops.length });
  }
}

export interface Violation {
  workload: string;
  seed: number;
  cut: number;
  fate: Fate;
  depth: 1 | 2;
  message: string;
}

export interface ExploreOptions {
  seed: number;
  /** Random fates per crash point, on top of "durable-only" and "everything". */
  randomStatesPerCut: number;
  /** Second crashes tried per recovered state. */
  secondCrashesPerState: number;
  disabled?: DisabledSite | null;
  /** Inject EIO on the n-th datasync of the workload (0 = none). */
  failDatasyncAt?: number;
  /** Stop at the first violation (mutation checks need just one). */
  stopAtFirst?: boolean;
}

export interface ExploreResult {
  states: number;
  ops: number;
  violations: Violation[];
  disabledHits: number;
}

export async function explore(workload: Workload, o: ExploreOptions): Promise<ExploreResult> {
  const rand = prng(o.seed);
  const fs = new SimFs(ROOT);
  fs.disabled = o.disabled ?? null;
  fs.failDatasyncIn = o.failDatasyncAt ?? 0;
  const clock = new ManualClock({ synced: false });
  const journal: Journal = { resolved: [], acks: [], attempted: new Set() };
  const log = await RingLog.open({ ...BASE_OPTS, ...workload.opts, dir: ROOT, fs, clock });
  await workload.run(new WorkloadContext(log, fs, clock, journal, rand, 'w'));
  await log.close();
  const result: ExploreResult = { states: 0, ops: fs.ops.length, violations: [], disabledHits: 0 };
  for (let cut = 0; cut <= fs.ops.length; cut++) {
    const fates: Fate[] = ['durable-only', 'everything', ...Array<Fate>(o.randomStatesPerCut).fill('random')];
    for (const fate of fates) {
      const state = crashState(fs, cut, fate, rand);
      const where = { workload: workload.name, seed: o.seed, cut, fate };
      const dropped = quotaDropsBefore(fs, cut, workload.opts.recordBytesMax ?? 1024);
      const found = await recoverAndCheck(
        workload,
        state,
        clock,
        journal,
        cut,
        where,
        1,
        rand,
        o.secondCrashesPerState,
        dropped,
      );
      result.states += found.states;
      result.violations.push(...found.violations);
      result.disabledHits = fs.siteHits.count;
      if (o.stopAtFirst && result.violations.length > 0) return result;
    }
  }
  result.disabledHits = fs.siteHits.count;
  return result;
}

type Where = Omit<Violation, 'depth' | 'message'>;

/** Seq ranges per lane whose records a quota drop (drop-oldest) deleted before the cut. */
type Dropped = Array<{ lane: string; lo: number; hi: number }>;

function quotaDropsBefore(fs: SimFs, cut: number, recordBytesMax: number): Dropped {
  const out: Dropped = [];
  for (let i = 0; i < cut; i++) {
    const op = fs.ops[i]!;
    if (op.t !== 'unlink' || !op.quota) continue;
    const content = fs.files.get(op.ino) ?? Buffer.alloc(0);
    let pos = 0;
    let lo = 0;
    let hi = 0;
    for (;;) {
      const res = parseRecord(content, pos, content.length, recordBytesMax);
      if (res.kind !== 'ok') break;
      if (lo === 0) lo = res.header.seq;
      hi = res.header.seq;
      pos += res.header.totalBytes;
    }
    out.push({ lane: op.dir.slice(op.dir.lastIndexOf('/') + 1), lo, hi });
  }
  return out;
}

async function recoverAndCheck(
  workload: Workload,
  state: SimFs,
  clock: ManualClock,
  journal: Journal,
  cut: number,
  where: Where,
  depth: 1 | 2,
  rand: () => number,
  secondCrashes: number,
  dropped: Dropped,
): Promise<{ states: number; violations: Violation[] }> {
  const violations: Violation[] = [];
  const fail = (message: string) => violations.push({ ...where, depth, message });
  const opts = { ...BASE_OPTS, ...workload.opts, dir: ROOT, fs: state, clock };
  let log: RingLog;
  try {
    log = await RingLog.open(opts);
  } catch (err) {
    fail(`recovery refused to open: ${(err as Error).message}`);
    return { states: 1, violations };
  }
  const before = (e: { at: number }) => e.at <= cut;
  await checkLanes(workload, log, journal, before, dropped, fail);
  let states = 1;
  if (depth === 2 || secondCrashes === 0 || violations.length > 0) {
    await log.close();
    return { states, violations };
  }
  // Keep going on the recovered log, then cut the power again somewhere in recovery or after it.
  const tail: Journal = {
    resolved: journal.resolved.filter(before).map((r) => ({ ...r, at: -1 })),
    acks: journal.acks.filter(before).map((a) => ({ ...a, at: -1 })),
    attempted: journal.attempted,
  };
  const ctx = new WorkloadContext(log, state, clock, tail, rand, 'r');
  for (let i = 0; i < 4; i++) await ctx.append(workload.lanes[i % workload.lanes.length]!);
  await log.writeCheckpoint().catch(() => undefined);
  await log.close();
  for (let i = 0; i < secondCrashes; i++) {
    const cut2 = Math.floor(rand() * (state.ops.length + 1));
    const second = crashState(state, cut2, 'random', rand);
    const dropped2 = [...dropped, ...quotaDropsBefore(state, cut2, opts.recordBytesMax ?? 1024)];
    const found = await recoverAndCheck(workload, second, clock, tail, cut2, where, 2, rand, 0, dropped2);
    states += found.states;
    violations.push(...found.violations);
  }
  return { states, violations };
}

async function checkLanes(
  workload: Workload,
  log: RingLog,
  journal: Journal,
  before: (e: { at: number }) => boolean,
  dropped: Dropped,
  fail: (m: string) => void,
): Promise<void> {
  const now = log.storeNowMs();
  for (const name of workload.lanes) {
    const resolved = journal.resolved.filter((r) => r.lane === name && before(r));
    const acks = journal.acks.filter((a) => a.lane === name && before(a));
    const maxAck = acks.reduce((m, a) => Math.max(m, a.seq), 0);
    const lane = log.lanes.get(name);
    const cursor = lane?.ackedSeq() ?? 0;
    if (cursor > maxAck) fail(`lane ${name}: cursor ${cursor} is past every ack issued (${maxAck})`);
    const present = new Map<number, string>();
    if (lane) {
      let prev = cursor;
      for await (const r of walkLane(lane, cursor + 1)) {
        const body = r.body.toString();
        if (r.seq <= prev) fail(`lane ${name}: seq ${r.seq} after ${prev} (duplicate or out of order)`);
        if (!journal.attempted.has(body)) fail(`lane ${name}: seq ${r.seq} holds bytes no one appended`);
        prev = r.seq;
        present.set(r.seq, body);
      }
    }
    const maxResolved = resolved.reduce((m, r) => Math.max(m, r.seq), 0);
    if (lane && lane.nextSeq <= maxResolved)
      fail(`lane ${name}: next seq ${lane.nextSeq} would reuse acknowledged seq ${maxResolved}`);
    for (const r of resolved) {
      if (r.seq <= cursor || present.get(r.seq) === r.body) continue;
      if (r.expiresAtStoreMs !== 0 && r.expiresAtStoreMs <= now) continue;
      if (dropped.some((d) => d.lane === name && r.seq >= d.lo && r.seq <= d.hi)) continue;
      fail(
        `lane ${name}: acknowledged seq ${r.seq} ${present.has(r.seq) ? 'changed' : 'missing'} ` +
          `(cursor ${cursor}${lane ? '' : ', lane lost'})`,
      );
      return;
    }
  }
}
