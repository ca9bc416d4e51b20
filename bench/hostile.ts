// `npm run bench -- hostile`: 5 well-behaved children publish QoS 1 through the hub (each waits for its
// PUBACK) for 60 s, once alone and once while a flood runs at the hub — idle unauthenticated connections
// (up to 4,100 open, from many loopback addresses), bad-password CONNECTs and 100 MiB packet headers. The
// gateway's hub, the flood and the children are three processes. Reported: the children's throughput
// (median of per-second counts) and PUBACK latency p99 in both runs, the ratio, disconnects of the good
// children, and the longest gap of a 100 ms watchdog tick in the gateway process. The per-child rate limit
// is lifted in both runs so throughput measures the hub, not the limit. The two conditions alternate in
// rounds (OUTPOST_BENCH_HOSTILE_ROUNDS); OUTPOST_BENCH_HOSTILE_SECS shortens the whole.
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { envInt, fmt, formatTable, median, runChild, type BenchModule, type ChildResult } from './harness.js';
import { GOOD_CHILDREN, flood, gateway, goodChildren, type GoodResult } from './hostile-roles.js';

/** Seconds of each condition in all, split into rounds. */
const SECS_DEFAULT = 60;
/**
 * Rounds of (no flood, flood), alternating: on a shared machine the background load drifts over minutes,
 * and two long runs one after the other would compare two different machines.
 */
const ROUNDS_DEFAULT = 6;
const TARGETS = { goodThroughputRatio: 0.8, goodDisconnects: 0 };

async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  switch (role) {
    case 'gateway':
      return gateway(String(args.keys), true);
    case 'flood':
      return flood(Number(args.port), Number(args.secs));
    default:
      throw new Error(`hostile bench has no child role "${role}"`);
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

interface Phase {
  good: GoodResult;
  gateway: ChildResult;
  flood: ChildResult | null;
}

/** One run: a fresh gateway, the good children for `secs`, and the flood alongside when `withFlood`. */
async function phase(keys: Record<string, string>, secs: number, withFlood: boolean): Promise<Phase> {
  let ready: (port: number) => void;
  const port = new Promise<number>((resolve) => (ready = resolve));
  let gatewayProc: ChildProcess | null = null;
  const gatewayDone = runChild(
    'hostile',
    'gateway',
    { keys: JSON.stringify(keys) },
    {
      onMessage: (msg, proc) => {
        gatewayProc = proc;
        if (msg.ready) ready(Number(msg.port));
      },
    },
  );
  const hubPort = await port;
  const floodDone = withFlood ? runChild('hostile', 'flood', { port: hubPort, secs }) : Promise.resolve(null);
  const good = await goodChildren(hubPort, keys, secs);
  const floodResult = await floodDone;
  (gatewayProc as ChildProcess | null)?.send({ stop: true });
  return { good, gateway: await gatewayDone, flood: floodResult };
}

/** Both runs of every round, merged: per-second counts and latencies pooled, the worst gap, the median CPU. */
interface Merged {
  perSecond: number[];
  latenciesMs: number[];
  disconnects: number;
  watchdogGapMaxMs: number;
  hubCpuPct: number;
}

function merge(phases: Phase[]): Merged {
  return {
    perSecond: phases.flatMap((p) => p.good.perSecond),
    latenciesMs: phases.flatMap((p) => p.good.latenciesMs),
    disconnects: phases.reduce((n, p) => n + p.good.disconnects, 0),
    watchdogGapMaxMs: Math.max(...phases.map((p) => Number(p.gateway.watchdogGapMaxMs))),
    hubCpuPct: median(phases.map((p) => Number(p.gateway.cpuPct))),
  };
}

async function run(): Promise<void> {
  const secs = envInt('OUTPOST_BENCH_HOSTILE_SECS', SECS_DEFAULT);
  const rounds = envInt('OUTPOST_BENCH_HOSTILE_ROUNDS', ROUNDS_DEFAULT);
  const roundSecs = Math.max(2, Math.round(secs / rounds));
  const ids = Array.from({ length: GOOD_CHILDREN }, (_, i) => `child-${i}`);
  const keys = Object.fromEntries(ids.map((id) => [id, randomBytes(32).toString('base64')]));
  console.log(
    `hostile: ${GOOD_CHILDREN} children publishing QoS 1 (window 1 each); ${rounds} rounds of ${roundSecs} s` +
      ' without, then with a flood',
  );
  const calmRuns: Phase[] = [];
  const floodRuns: Phase[] = [];
  for (let i = 0; i < rounds; i += 1) {
    calmRuns.push(await phase(keys, roundSecs, false));
    floodRuns.push(await phase(keys, roundSecs, true));
  }
  const calm = merge(calmRuns);
  const stormy = merge(floodRuns);
  const ratio = median(stormy.perSecond) / median(calm.perSecond);
  const p99 = (m: Merged) => Math.round(percentile(m.latenciesMs, 99) * 10) / 10;
  const row = (name: string, m: Merged) => [
    name,
    fmt(median(m.perSecond)),
    fmt(percentile(m.latenciesMs, 50), 1),
    fmt(percentile(m.latenciesMs, 99), 1),
    fmt(m.disconnects),
    fmt(m.watchdogGapMaxMs),
    fmt(m.hubCpuPct),
  ];
  const header = ['run', 'msg/s (median)', 'PUBACK p50 ms', 'PUBACK p99 ms', 'disconnects', 'watchdog gap', 'hub CPU%'];
  console.log(formatTable(header, [row('no flood', calm), row('flood', stormy)]));
  const sent = (key: string) => fmt(floodRuns.reduce((n, p) => n + Number(p.flood?.[key] ?? 0), 0));
  const floodCpu = fmt(median(floodRuns.map((p) => Number(p.flood?.cpuPct))));
  console.log(
    `hostile: flood sent ${sent('opened')} idle connections, ${sent('authAttempts')} bad CONNECTs, ` +
      `${sent('oversize')} oversize headers; CPU of the flood process ${floodCpu}%`,
  );
  const lastRefusals = String(floodRuns[floodRuns.length - 1]?.gateway.refusals);
  console.log(`hostile: hub refusals in the last flood run ${lastRefusals}`);
  const result = {
    bench: 'hostile',
    secs: rounds * roundSecs,
    goodThroughputRatio: Math.round(ratio * 1000) / 1000,
    goodDisconnects: stormy.disconnects,
    watchdogGapMaxMs: stormy.watchdogGapMaxMs,
    calm: {
      msgPerSec: median(calm.perSecond),
      pubackP99Ms: p99(calm),
      watchdogGapMaxMs: calm.watchdogGapMaxMs,
      hubCpuPct: calm.hubCpuPct,
    },
    flood: { msgPerSec: median(stormy.perSecond), pubackP99Ms: p99(stormy), hubCpuPct: stormy.hubCpuPct },
    targets: TARGETS,
    pass: ratio >= TARGETS.goodThroughputRatio && stormy.disconnects === TARGETS.goodDisconnects,
  };
  console.log(JSON.stringify(result));
}

const hostile: BenchModule = { run, child };
export default hostile;
