// `npm run bench -- powercut`: the power-cut simulator at scale. Explores at least 1,000,000 post-power-loss
// states of the ring log (every workload, crash points at every recorded operation, several seeds, a second
// crash after each recovery) across one worker process per core, and prints the counts.
import { availableParallelism } from 'node:os';
import { explore } from '../test/support/powercut.js';
import { WORKLOADS } from '../test/support/powercut-workloads.js';
import { envInt, fmt, formatTable, runChild, type BenchModule, type ChildResult } from './harness.js';

/** States to explore in all; OUTPOST_BENCH_POWERCUT_STATES overrides for a quick run. */
const STATES_DEFAULT = 1_000_000;
/** Random post-power-loss states per crash point, on top of "durable-only" and "everything". */
const RANDOM_STATES_PER_CUT = 30;
/** Second crashes tried after each recovery (the double-crash check). */
const SECOND_CRASHES_PER_STATE = 1;
/** Violations a worker reports in detail (the count is always complete). */
const VIOLATIONS_REPORTED_MAX = 10;

interface WorkerTotals {
  states: number;
  runs: number;
  ops: number;
  violations: number;
  firstViolations: string;
}

async function worker(args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const target = Number(args.states);
  const seedBase = Number(args.seedBase);
  const totals: WorkerTotals = { states: 0, runs: 0, ops: 0, violations: 0, firstViolations: '' };
  const perWorkload: Record<string, number> = {};
  const details: string[] = [];
  for (let run = 0; totals.states < target; run++) {
    const workload = WORKLOADS[run % WORKLOADS.length]!;
    const seed = seedBase + run;
    const r = await explore(workload, {
      seed,
      randomStatesPerCut: RANDOM_STATES_PER_CUT,
      secondCrashesPerState: SECOND_CRASHES_PER_STATE,
    });
    totals.states += r.states;
    totals.runs++;
    totals.ops += r.ops;
    totals.violations += r.violations.length;
    perWorkload[workload.name] = (perWorkload[workload.name] ?? 0) + r.states;
    for (const v of r.violations) if (details.length < VIOLATIONS_REPORTED_MAX) details.push(JSON.stringify(v));
  }
  totals.firstViolations = details.join('\n');
  return { ...totals, ...Object.fromEntries(Object.entries(perWorkload).map(([k, v]) => [`states:${k}`, v])) };
}

async function run(): Promise<void> {
  const statesTarget = envInt('OUTPOST_BENCH_POWERCUT_STATES', STATES_DEFAULT);
  const workers = Math.max(1, availableParallelism());
  const seedBase = Date.now() % 1_000_000_000;
  console.log(`powercut: exploring ≥ ${fmt(statesTarget)} crash states in ${workers} workers (seeds from ${seedBase})`);
  const started = performance.now();
  const results: ChildResult[] = await Promise.all(
    Array.from({ length: workers }, (_, i) =>
      runChild('powercut', 'worker', { states: Math.ceil(statesTarget / workers), seedBase: seedBase + i * 100_000 }),
    ),
  );
  const seconds = (performance.now() - started) / 1000;
  const sum = (key: string) => results.reduce((n, r) => n + Number(r[key] ?? 0), 0);
  const states = sum('states');
  const violations = sum('violations');
  console.log(
    formatTable(
      ['workload', 'states'],
      WORKLOADS.map((w) => [w.name, fmt(sum(`states:${w.name}`))]),
    ),
  );
  console.log(
    formatTable(
      ['figure', 'value'],
      [
        ['workload runs (seeds)', fmt(sum('runs'))],
        ['recorded fs operations (crash points)', fmt(sum('ops'))],
        ['crash states explored (incl. second crashes)', fmt(states)],
        ['violations', fmt(violations)],
        ['wall time, s', fmt(seconds, 1)],
        ['states per second', fmt(states / seconds)],
      ],
    ),
  );
  for (const r of results) if (r.firstViolations) console.log(String(r.firstViolations));
  console.log(
    JSON.stringify({
      states,
      violations,
      seconds: Number(seconds.toFixed(1)),
      statesPerSec: Math.round(states / seconds),
      runs: sum('runs'),
    }),
  );
  if (violations > 0) process.exitCode = 1;
}

const powercut: BenchModule = {
  run,
  child: async (role, args) => {
    if (role !== 'worker') throw new Error(`powercut bench has no child role "${role}"`);
    return worker(args);
  },
};
export default powercut;
