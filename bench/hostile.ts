// `npm run bench -- hostile`: 5 well-behaved children publish QoS 1 through the hub (each waits for its
// PUBACK) for 60 s, once alone and once while a flood runs at the hub — idle unauthenticated connections
// (up to 4,100 open, from many loopback addresses), bad-password CONNECTs and 100 MiB packet headers. The
// gateway's hub, the flood and the children are three processes. Reported: the children's throughput
// (median of per-second counts) and PUBACK latency p99 in both runs, the ratio, disconnects of the good
// children, and the longest gap of a 100 ms watchdog tick in the gateway process. The per-child rate limit
// is lifted in both runs so throughput measures the hub, not the limit. OUTPOST_BENCH_HOSTILE_SECS shortens it.
import { randomBytes } from 'node:crypto';
import type { ChildProcess } from 'node:child_process';
import { envInt, fmt, formatTable, median, runChild, type BenchModule, type ChildResult } from './harness.js';
import { GOOD_CHILDREN, flood, gateway, goodChildren, type GoodResult } from './hostile-roles.js';

const SECS_DEFAULT = 60;
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
  const gatewayDone = runChild('hostile', 'gateway', { keys: JSON.stringify(keys) }, {
    onMessage: (msg, proc) => {
      gatewayProc = proc;
      if (msg.ready) ready(Number(msg.port));
    },
  });
  const hubPort = await port;
  const floodDone = withFlood ? runChild('hostile', 'flood', { port: hubPort, secs }) : Promise.resolve(null);
  const good = await goodChildren(hubPort, keys, secs);
  const floodResult = await floodDone;
  (gatewayProc as ChildProcess | null)?.send({ stop: true });
  return { good, gateway: await gatewayDone, flood: floodResult };
}

async function run(): Promise<void> {
  const secs = envInt('OUTPOST_BENCH_HOSTILE_SECS', SECS_DEFAULT);
  const keys = Object.fromEntries(Array.from({ length: GOOD_CHILDREN }, (_, i) => [`child-${i}`, randomBytes(32).toString('base64')]));
  console.log(`hostile: ${GOOD_CHILDREN} children publishing QoS 1 (window 1 each) for ${secs} s, without and with a flood`);
  const calm = await phase(keys, secs, false);
  const stormy = await phase(keys, secs, true);
  const rate = (p: Phase) => median(p.good.perSecond);
  const ratio = rate(stormy) / rate(calm);
  const row = (name: string, p: Phase) => [
    name, fmt(rate(p)), fmt(percentile(p.good.latenciesMs, 50), 1), fmt(percentile(p.good.latenciesMs, 99), 1),
    fmt(p.good.disconnects), fmt(Number(p.gateway.watchdogGapMaxMs)), fmt(Number(p.gateway.cpuPct)),
  ];
  console.log(formatTable(['run', 'msg/s (median)', 'PUBACK p50 ms', 'PUBACK p99 ms', 'disconnects', 'watchdog gap max ms', 'hub CPU %'], [row('no flood', calm), row('flood', stormy)]));
  console.log(`hostile: flood sent ${fmt(Number(stormy.flood?.opened))} idle connections, ${fmt(Number(stormy.flood?.authAttempts))} bad CONNECTs, ${fmt(Number(stormy.flood?.oversize))} oversize headers, using ${fmt(Number(stormy.flood?.cpuPct))}% CPU itself`);
  console.log(`hostile: hub refusals during the flood ${String(stormy.gateway.refusals)}`);
  const result = {
    bench: 'hostile',
    secs,
    goodThroughputRatio: Math.round(ratio * 1000) / 1000,
    goodDisconnects: stormy.good.disconnects,
    watchdogGapMaxMs: Number(stormy.gateway.watchdogGapMaxMs),
    calm: { msgPerSec: rate(calm), pubackP99Ms: Math.round(percentile(calm.good.latenciesMs, 99) * 10) / 10, watchdogGapMaxMs: Number(calm.gateway.watchdogGapMaxMs) },
    flood: { msgPerSec: rate(stormy), pubackP99Ms: Math.round(percentile(stormy.good.latenciesMs, 99) * 10) / 10 },
    targets: TARGETS,
    pass: ratio >= TARGETS.goodThroughputRatio && stormy.good.disconnects === TARGETS.goodDisconnects,
  };
  console.log(JSON.stringify(result));
}

const hostile: BenchModule = { run, child };
export default hostile;
