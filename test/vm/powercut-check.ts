// Judges the crash states of a power-cut workload (test/vm/powercut-workload.ts) built by test/vm/replay.ts:
// what the store recovered against what the children saw PUBACKed.
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import {
  E2FSCK_UNCORRECTED_CODE,
  planStates,
  recoverState,
  StateBuilder,
  type CrashState,
  type Recovered,
  type StoreShape,
  type WriteLog,
} from './replay.js';

/** One message a child published with QoS 1, and where the log was when its PUBACK came back. */
export interface Published {
  child: string;
  /** Its place in the child's sequence (each child publishes one at a time, so this is the stored order). */
  n: number;
  body: string;
  /** Size of the blklogwrites log when the host had the PUBACK; absent when it never came. */
  ackedAtLogByte?: number;
}

export interface Verdict {
  state: string;
  /** PUBACKed before this state's crash point: the store must have them. */
  required: number;
  present: number;
  /** Present although their PUBACK came later or never (allowed: written, not yet acknowledged). */
  unackedPresent: number;
  /** Everything wrong with this state; empty when it passed. */
  problems: string[];
}

/**
 * A message is owed in a state when its PUBACK arrived before the state's crash point: the log then held the
 * flush the gateway waited for, so the state's prefix (all entries up to a flush at or past that log size)
 * holds it too. Owed messages must all be there, each child's in its order, and nothing else may appear.
 */
export function judge(state: CrashState, log: WriteLog, recovered: Recovered, published: Published[]): Verdict {
  const crashAt = state.prefix > 0 ? log.entries[state.prefix - 1]!.endAt : log.sectorBytes;
  const byBody = new Map(published.map((p) => [p.body, p]));
  const problems: string[] = [];
  if (recovered.fsckCode >= E2FSCK_UNCORRECTED_CODE) problems.push(`e2fsck left errors (exit ${recovered.fsckCode})`);
  if (recovered.openError) problems.push(`the store did not open: ${recovered.openError}`);
  const seen = new Set<string>();
  const lastN = new Map<string, number>();
  let unackedPresent = 0;
  for (const body of recovered.bodies) {
    const p = byBody.get(body);
    if (!p) {
      problems.push(`invented record ${JSON.stringify(body.slice(0, 40))}`);
      continue;
    }
    if (seen.has(body)) problems.push(`duplicate record ${p.child}#${p.n}`);
    seen.add(body);
    if ((lastN.get(p.child) ?? -1) >= p.n) problems.push(`${p.child}#${p.n} stored after #${lastN.get(p.child)}`);
    lastN.set(p.child, p.n);
    if (p.ackedAtLogByte === undefined || p.ackedAtLogByte > crashAt) unackedPresent++;
  }
  const owed = published.filter((p) => p.ackedAtLogByte !== undefined && p.ackedAtLogByte <= crashAt);
  if (!recovered.dataDirFound && owed.length > 0) problems.push("the store's folder is not on the disk");
  const lost = owed.filter((p) => !seen.has(p.body));
  if (lost.length > 0) {
    const first = lost
      .slice(0, 5)
      .map((p) => `${p.child}#${p.n}`)
      .join(', ');
    problems.push(`${lost.length} PUBACKed messages lost (${first})`);
  }
  return { state: state.name, required: owed.length, present: seen.size, unackedPresent, problems };
}

export interface RunCheck {
  states: number;
  violations: number;
  verdicts: Verdict[];
  /** What recovery saw across the states: torn tails cut, corrupt ranges, e2fsck repairs. */
  tornTails: number;
  corrupt: number;
  fsckRepaired: number;
}

export interface RunToCheck {
  dataDir: string;
  published: Published[];
  startLogByte: number;
}

/**
 * Builds `count` crash states from the flushes at or after the run's start (and before `endByte`), recovers and
 * judges each, printing a progress line every few states.
 */
export async function checkRun(
  log: WriteLog,
  basePath: string,
  run: RunToCheck,
  opts: {
    count: number;
    seed: number;
    endByte?: number;
    shape: StoreShape;
    workDir: string;
    progress: (l: string) => void;
  },
): Promise<RunCheck> {
  const states = planStates(log, opts.count, run.startLogByte, opts.seed, opts.endByte);
  const builder = await StateBuilder.start(log, basePath, opts.workDir);
  const result: RunCheck = { states: 0, violations: 0, verdicts: [], tornTails: 0, corrupt: 0, fsckRepaired: 0 };
  const image = join(opts.workDir, 'state.img');
  try {
    for (const state of states) {
      await builder.build(state, image);
      const recovered = await recoverState(image, run.dataDir, opts.workDir, opts.shape);
      const verdict = judge(state, log, recovered, run.published);
      result.states++;
      if (verdict.problems.length > 0) result.violations++;
      result.tornTails += recovered.damage.filter((d) => d.kind === 'torn-tail').length;
      result.corrupt += recovered.damage.filter((d) => d.kind !== 'torn-tail').length;
      if (recovered.fsckCode > 0) result.fsckRepaired++;
      result.verdicts.push(verdict);
      if (result.states % 10 === 0 || verdict.problems.length > 0) {
        opts.progress(
          `powercut: ${result.states}/${states.length} states, ${result.violations} violations; ` +
            `${verdict.state}: owed ${verdict.required}, present ${verdict.present}` +
            `${verdict.problems.length > 0 ? `: ${verdict.problems.slice(0, 3).join('; ')}` : ''}`,
        );
      }
    }
  } finally {
    await builder.close();
    await rm(image, { force: true });
  }
  return result;
}
