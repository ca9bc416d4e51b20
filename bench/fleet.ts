// `npm run bench -- fleet`: 200 gateways' real uplink code (fleet-cell.ts: Pump + mqtt transport + backoff,
// each on its own backlog) in a few child processes, against one local mosquitto behind a connection-rate
// limit (the fault proxy's accept limit, answering CONNACK 0x9F over it, as a rate-limited broker listener
// does; 100 connects/s like an IoT Hub S1's minimum, bursts of 50). The fleet boots and drains, lives through
// a broker restart, then an outage that ends for every gateway at once (SIGUSR2 to every cell, the modem
// hook's path). Measured per phase: peak connect attempts per second (over 100 ms windows, so a burst shows
// at its own rate) as each gateway's uplink code had them due (fleet-cell.ts: a cell plays 50 gateways on
// a shared core, and timed where they ran the herd would be measured at the simulator's speed), as they
// went out, and as the proxy accepted them (both later when a process is busy: shown, not the headline);
// time from the event until each gateway publishes again (p50, p99); over the run, messages lost and
// duplicated at a consumer straight at the broker. The same fleet runs with jitter off (a wake connects at
// once, a backoff sleeps its whole ceiling), alternating, RUNS times each; medians are reported and compared.
// OUTPOST_BENCH_FLEET_GATEWAYS, _CELLS, _BACKLOG and _RUNS change the size.
import { FaultProxy } from '../test/support/fault-proxy.js';
import { peakPerSec } from '../test/support/accept-limit.js';
import { Cell, Consumer, epochMs, fleetAttempts, fleetStatus, percentile, until } from './fleet-control.js';
import { runCell, type GatewayReport } from './fleet-cell.js';
import { envInt, fmt, formatTable, median, type BenchModule } from './harness.js';

const GATEWAYS_DEFAULT = 200;
/** Child processes the gateways are split over: a few, for a machine with two cores. */
const CELLS_DEFAULT = 4;
/** Records each gateway gets before boot, during the broker restart and during the outage. */
const BACKLOG_DEFAULT = 50;
/** Fleet runs per variant (jitter, no jitter), alternating; the machine's load varies between them. */
const RUNS_DEFAULT = 3;
/** The connection-rate limit in front of the broker. */
const ACCEPTS_PER_SEC = 100;
const ACCEPT_BURST = 50;
/** Window of the peak connect rate, ms: short enough that a burst inside the 1 s link-up budget shows. */
const PEAK_WINDOW_MS = 100;
/**
 * How long the outage lasts: until every gateway's backoff ceiling is at least this, ms. A real outage lasts
 * minutes or hours, and by then every ceiling is at its 60 s maximum, so the sleeps under way end long
 * after the link is back and the wake alone decides when each gateway connects. After a short outage many
 * sleeps would end inside the jitter window anyway; 60 s ceilings would take minutes per run to reach, and
 * with 8 s most sleeps under way outlast the 800 ms window.
 */
const OUTAGE_CEILING_MS = 8_000;
/** A phase whose gateways are not all draining and drained by then fails the run. */
const PHASE_TIMEOUT_MS = 90_000;
const TARGETS = { peakVsNoJitter: 0.25, p99DrainingMs: 10_000, lost: 0 };

interface Phase {
  peakConnectsPerSec: number;
  /** Peak rate as the connects went out of the cells (mqtt.js's connect(), the SYN). */
  peakSentPerSec: number;
  peakAcceptsPerSec: number;
  p50DrainingMs: number;
  p99DrainingMs: number;
  connects: number;
}

interface Run {
  restart: Phase;
  linkUp: Phase;
  lost: number;
  duplicates: number;
  throttled: number;
}

function split<T>(items: T[], parts: number): T[][] {
  return Array.from({ length: parts }, (_, i) => items.filter((_, k) => k % parts === i));
}

async function each(cells: Cell[], cmd: string, extra: Record<string, unknown> = {}): Promise<void> {
  await Promise.all(cells.map((c) => c.command(cmd, extra)));
}

async function drained(cells: Cell[]): Promise<boolean> {
  return (await fleetStatus(cells)).every((g) => g.link === 'up' && g.acked === g.durable);
}

/** From the event at `t0` until every gateway has published again and drained its backlog. */
async function phase(cells: Cell[], proxy: FaultProxy, t0: Instant, linkUp = false): Promise<Phase> {
  const acceptsBefore = proxy.acceptedCount;
  const allDraining = async () => (await fleetStatus(cells)).every((g) => g.firstPublishAtMs !== null);
  await until('every gateway draining', allDraining, PHASE_TIMEOUT_MS);
  await until('every backlog drained', () => drained(cells), PHASE_TIMEOUT_MS);
  const times = (await fleetStatus(cells)).map((g) => g.firstPublishAtMs! - t0.epochMs);
  const attempts = await fleetAttempts(cells, linkUp ? t0.epochMs : undefined);
  const since = (times: number[]) => times.filter((at) => at >= t0.epochMs);
  return {
    peakConnectsPerSec: peakPerSec(since(attempts.dueAtMs), PEAK_WINDOW_MS),
    peakSentPerSec: peakPerSec(since(attempts.sentAtMs), PEAK_WINDOW_MS),
    peakAcceptsPerSec: proxy.peakAcceptsPerSec(PEAK_WINDOW_MS, t0.perfMs),
    p50DrainingMs: percentile(times, 50),
    p99DrainingMs: percentile(times, 99),
    connects: proxy.acceptedCount - acceptsBefore,
  };
}

interface Instant {
  epochMs: number;
  perfMs: number;
}

const now = (): Instant => ({ epochMs: epochMs(), perfMs: performance.now() });

async function fleetRun(jitter: boolean, gateways: number, cellCount: number, backlog: number): Promise<Run> {
  const { Mosquitto } = await import('../test/support/brokers.js');
  const broker = await Mosquitto.start();
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  proxy.limitAccepts({ acceptsPerSec: ACCEPTS_PER_SEC, burst: ACCEPT_BURST });
  const consumer = await Consumer.start(broker.url);
  const ids = Array.from({ length: gateways }, (_, i) => `fleet-${i}`);
  const url = `mqtt://127.0.0.1:${proxy.port}`;
  const cells = await Promise.all(split(ids, cellCount).map((gatewayIds) => Cell.start({ url, gatewayIds, jitter })));
  try {
    await each(cells, 'append', { count: backlog });
    await each(cells, 'start');
    await until('the boot backlog drained', () => drained(cells), PHASE_TIMEOUT_MS);

    await broker.halt();
    const noneUp = async () => (await fleetStatus(cells)).every((g) => g.link !== 'up');
    await until('every gateway noticed the broker gone', noneUp, PHASE_TIMEOUT_MS);
    await each(cells, 'append', { count: backlog });
    await each(cells, 'mark');
    // From the moment the broker starts: gateways reconnect before launch() has seen its port open.
    const restartedAt = now();
    await broker.launch();
    const restart = await phase(cells, proxy, restartedAt);

    proxy.refuse();
    proxy.cut();
    const longOutage = (g: GatewayReport) => g.link === 'backoff' && g.ceilingMs >= OUTAGE_CEILING_MS;
    const allBackoff = async () => (await fleetStatus(cells)).every(longOutage);
    await until(`every gateway in backoff with a ceiling of ${OUTAGE_CEILING_MS} ms`, allBackoff, PHASE_TIMEOUT_MS);
    await each(cells, 'append', { count: backlog });
    await each(cells, 'mark');
    proxy.pass();
    const t0 = now();
    for (const cell of cells) cell.signalLinkUp();
    const linkUp = await phase(cells, proxy, t0, true);

    const expected = gateways * backlog * 3;
    // Not a failure here: what never arrives is counted as lost below.
    const allArrived = () => consumer.distinctTotal >= expected;
    await until('the consumer has every message', allArrived, PHASE_TIMEOUT_MS).catch(() => {});
    const lost = ids.reduce((sum, id) => sum + backlog * 3 - consumer.distinct(id, backlog * 3), 0);
    const throttled = (await fleetStatus(cells)).reduce((sum, g) => sum + g.throttled, 0);
    return { restart, linkUp, lost, duplicates: consumer.received - consumer.distinctTotal, throttled };
  } finally {
    await each(cells, 'stop').catch(() => {});
    await Promise.allSettled(cells.map((c) => c.done));
    await consumer.close();
    await proxy.close();
    await broker.stop();
  }
}

/** The median run: each figure the median over the runs, lost and duplicates summed. */
function medianRun(runs: Run[]): Run {
  const phaseOf = (key: 'restart' | 'linkUp'): Phase => {
    const mid = (f: (p: Phase) => number) => median(runs.map((r) => f(r[key])));
    return {
      peakConnectsPerSec: mid((p) => p.peakConnectsPerSec),
      peakSentPerSec: mid((p) => p.peakSentPerSec),
      peakAcceptsPerSec: mid((p) => p.peakAcceptsPerSec),
      p50DrainingMs: mid((p) => p.p50DrainingMs),
      p99DrainingMs: mid((p) => p.p99DrainingMs),
      connects: mid((p) => p.connects),
    };
  };
  const sum = (f: (r: Run) => number) => runs.reduce((total, r) => total + f(r), 0);
  return {
    restart: phaseOf('restart'),
    linkUp: phaseOf('linkUp'),
    lost: sum((r) => r.lost),
    duplicates: sum((r) => r.duplicates),
    throttled: median(runs.map((r) => r.throttled)),
  };
}

function rows(name: string, run: Run): string[][] {
  return (['restart', 'linkUp'] as const).map((key) => {
    const p = run[key];
    const label = `${name}, ${key === 'restart' ? 'broker restart' : 'simultaneous link-up'}`;
    const cells = [p.peakConnectsPerSec, p.peakSentPerSec, p.peakAcceptsPerSec, p.connects, p.p50DrainingMs];
    cells.push(p.p99DrainingMs);
    return [label, ...cells.map((v) => fmt(v))];
  });
}

function summary(jittered: Run, plain: Run, gateways: number): Record<string, unknown> {
  const peakVsNoJitter = jittered.linkUp.peakConnectsPerSec / plain.linkUp.peakConnectsPerSec;
  const lost = jittered.lost + plain.lost;
  const pass = {
    peakVsNoJitter: peakVsNoJitter <= TARGETS.peakVsNoJitter,
    p99DrainingMs: jittered.linkUp.p99DrainingMs <= TARGETS.p99DrainingMs,
    lost: lost === TARGETS.lost,
  };
  const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');
  console.log(
    `targets: peakVsNoJitter <= ${TARGETS.peakVsNoJitter} ${verdict(pass.peakVsNoJitter)}; ` +
      `p99DrainingMs <= ${TARGETS.p99DrainingMs} ${verdict(pass.p99DrainingMs)}; lost 0 ${verdict(pass.lost)}`,
  );
  const round = (v: number, digits = 0) => Number(v.toFixed(digits));
  return {
    peakConnectsPerSec: round(jittered.linkUp.peakConnectsPerSec),
    peakVsNoJitter: round(peakVsNoJitter, 3),
    p99DrainingMs: round(jittered.linkUp.p99DrainingMs),
    lost,
    duplicates: jittered.duplicates + plain.duplicates,
    noJitterPeakConnectsPerSec: round(plain.linkUp.peakConnectsPerSec),
    peakSentVsNoJitter: round(jittered.linkUp.peakSentPerSec / plain.linkUp.peakSentPerSec, 3),
    noJitterP99DrainingMs: round(plain.linkUp.p99DrainingMs),
    restartPeakConnectsPerSec: round(jittered.restart.peakConnectsPerSec),
    restartP99DrainingMs: round(jittered.restart.p99DrainingMs),
    noJitterRestartPeakConnectsPerSec: round(plain.restart.peakConnectsPerSec),
    noJitterRestartP99DrainingMs: round(plain.restart.p99DrainingMs),
    gateways,
    pass,
  };
}

async function run(): Promise<void> {
  const gateways = envInt('OUTPOST_BENCH_FLEET_GATEWAYS', GATEWAYS_DEFAULT);
  const cells = envInt('OUTPOST_BENCH_FLEET_CELLS', CELLS_DEFAULT);
  const backlog = envInt('OUTPOST_BENCH_FLEET_BACKLOG', BACKLOG_DEFAULT);
  const runs = envInt('OUTPOST_BENCH_FLEET_RUNS', RUNS_DEFAULT);
  console.log(
    `fleet: ${gateways} gateways in ${cells} processes, ${backlog} records each per phase, ` +
      `${ACCEPTS_PER_SEC} connects/s (bursts of ${ACCEPT_BURST}) in front of one mosquitto, ${runs} runs each`,
  );
  const all: { jitter: Run[]; plain: Run[] } = { jitter: [], plain: [] };
  for (let i = 0; i < runs; i += 1) {
    all.jitter.push(await fleetRun(true, gateways, cells, backlog));
    all.plain.push(await fleetRun(false, gateways, cells, backlog));
  }
  const jittered = medianRun(all.jitter);
  const plain = medianRun(all.plain);
  const header = ['fleet (medians)', 'peak connects/s due', 'as sent', 'at the proxy', 'connects'];
  header.push('p50 draining ms');
  header.push('p99 draining ms');
  console.log(formatTable(header, [...rows('jitter', jittered), ...rows('no jitter', plain)]));
  for (const [name, r] of [
    ['jitter', jittered],
    ['no jitter', plain],
  ] as const) {
    const counts = `lost ${r.lost}, duplicates ${r.duplicates}`;
    console.log(`${name}: ${counts}, throttling answers ${r.throttled} (median per run)`);
  }
  console.log(JSON.stringify(summary(jittered, plain, gateways)));
}

async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (role !== 'cell') throw new Error(`fleet bench has no child role "${role}"`);
  return runCell(args as unknown as Parameters<typeof runCell>[0]);
}

const fleet: BenchModule = { run, child };
export default fleet;
