// `npm run bench -- uplink`: a backlog drained through outpost (RingLog + Pump + mqtt transport) to a
// local mosquitto against two raw mqtt.js publishers of the same records with the same window and QoS 1:
// MQTT 5 with outpost's three user properties (the baseline), and MQTT 3.1.1 with no properties (the
// cheapest publisher there is). Each reports its CPU time per message (user + system of the publishing
// process), which is what a Pi Zero 2 W, with a fraction of this machine's CPU, runs out of first. Then
// link-up → first backlog message at the broker, over mqtt and over the azure transport (IoT Hub emulator
// behind the fault proxy, after a black-holed outage); peak RSS during the drain. Each side runs in its own
// child process, with the V8 flags `npm run bench` passes, which are the gateway's own
// (scripts/node-flags.json). OUTPOST_BENCH_UPLINK_RECORDS shrinks the backlog for a quick run,
// OUTPOST_BENCH_UPLINK_LINK_RUNS and OUTPOST_BENCH_UPLINK_AZURE_RUNS the link-up runs.
import { existsSync } from 'node:fs';
import {
  envInt,
  fmt,
  formatTable,
  freshDir,
  removeDir,
  runChild,
  type BenchModule,
  type ChildResult,
} from './harness.js';
import { BODY_BYTES, WINDOW_MESSAGES, drainOutpost, drainRaw, fill, linkUp, type RawVariant } from './uplink-roles.js';

/** The backlog: 1,000,000 records. */
const RECORDS_DEFAULT = 1_000_000;
/** Link-up measurements; the median is reported. */
const LINK_UP_RUNS_DEFAULT = 10;
/** Azure link-up runs per phase (connecting, backoff); a backoff run waits out one 15 s connect timeout. */
const AZURE_LINK_UP_RUNS_DEFAULT = 3;
const WARM_UP_RECORDS = 20_000;
const TARGETS = { drainVsRaw: 0.8, linkUpMs: 1_000, azureLinkUpMs: 1_000, rssMb: 80 };

async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const records = Number(args.records);
  switch (role) {
    case 'fill':
      return fill(String(args.dir), records);
    case 'outpost':
      return drainOutpost(String(args.dir), String(args.url), records);
    case 'raw':
      return drainRaw(String(args.url), records, String(args.variant) as RawVariant);
    case 'linkup':
      return linkUp(Number(args.port), String(args.url), Number(args.runs));
    case 'azure-linkup':
      return (await import('./uplink-azure.js')).azureLinkUp(Number(args.runs));
    default:
      throw new Error(`uplink bench has no child role "${role}"`);
  }
}

function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'MISS';
}

interface Results {
  records: number;
  runs: number;
  raw: ChildResult;
  bare: ChildResult;
  outpost: ChildResult;
  link: ChildResult;
  azure: ChildResult;
}

async function measure(records: number, runs: number, azureRuns: number): Promise<Results> {
  // Loaded here, not at the top: the drain children evaluate this module too, and aedes (which brokers.ts
  // also offers) would add to the resident memory they measure.
  const { Mosquitto, MOSQUITTO_PATH } = await import('../test/support/brokers.js');
  if (!existsSync(MOSQUITTO_PATH))
    throw new Error(`uplink bench needs mosquitto at ${MOSQUITTO_PATH} (scripts/install-system-deps.sh)`);
  const broker = await Mosquitto.start({ persistence: false });
  const dir = await freshDir('uplink');
  try {
    const filled = await runChild('uplink', 'fill', { dir, records });
    console.log(`uplink: backlog filled (${fmt(Number(filled.bytesOnDisk) / 2 ** 20, 1)} MiB on disk)`);
    // A short unmeasured run first, so no side pays for a cold broker.
    const warmUp = Math.min(records, WARM_UP_RECORDS);
    await runChild('uplink', 'raw', { url: broker.url, records: warmUp, variant: 'v5-props' });
    const raw = await runChild('uplink', 'raw', { url: broker.url, records, variant: 'v5-props' });
    const bare = await runChild('uplink', 'raw', { url: broker.url, records, variant: 'v311-bare' });
    const outpost = await runChild('uplink', 'outpost', { dir, url: broker.url, records });
    const link = await runChild('uplink', 'linkup', { port: broker.port, url: broker.url, runs });
    const azure = await runChild('uplink', 'azure-linkup', { runs: azureRuns });
    return { records, runs, raw, bare, outpost, link, azure };
  } finally {
    await removeDir(dir);
    await broker.stop();
  }
}

function drainRow(name: string, r: ChildResult, vsRaw: string): string[] {
  const cpuUs = Number(r.cpuUsPerMsg);
  return [
    name,
    fmt(Number(r.perSec)),
    fmt(Number(r.drainMs) / 1000, 1),
    fmt(cpuUs, 1),
    fmt(1e6 / cpuUs),
    fmt(Number(r.startRssMb), 1),
    fmt(Number(r.rssMb), 1),
    fmt(Number(r.heapTotalMbMax), 1),
    vsRaw,
  ];
}

function printDrains(raw: ChildResult, bare: ChildResult, outpost: ChildResult, drainVsRaw: number): void {
  console.log(
    formatTable(
      [
        'drain',
        'msgs/s',
        'drain s',
        'CPU µs/msg',
        'msgs/s per core',
        'RSS at start MiB',
        'peak RSS MiB',
        'peak heap MiB',
        'vs raw',
      ],
      [
        drainRow('raw mqtt.js, MQTT 5 + 3 user properties', raw, ''),
        drainRow('raw mqtt.js, MQTT 3.1.1, no properties', bare, fmt(Number(bare.perSec) / Number(raw.perSec), 2)),
        drainRow('outpost (ring log + pump, MQTT 5)', outpost, fmt(drainVsRaw, 2)),
      ],
    ),
  );
}

function printLinkUps(runs: number, link: ChildResult, azure: ChildResult, linkUpMs: number): void {
  console.log(
    formatTable(
      ['link-up → first backlog message', 'median ms', 'min ms', 'max ms', 'timeouts'],
      [
        [
          `mqtt, refused outage (${runs} runs)`,
          fmt(linkUpMs),
          fmt(Number(link.linkUpMsMin)),
          fmt(Number(link.linkUpMsMax)),
          fmt(Number(link.timeouts)),
        ],
        ...(['connecting', 'backoff'] as const).map((phase) => [
          `azure, black hole, link returns ${phase === 'connecting' ? 'mid-connect' : 'in backoff'} ` +
            `(${azure.runsPerPhase} runs)`,
          fmt(Number(azure[`${phase}Ms`])),
          fmt(Number(azure[`${phase}MinMs`])),
          fmt(Number(azure[`${phase}MaxMs`])),
          '',
        ]),
        ['azure timeouts, both phases', '', '', '', fmt(Number(azure.timeouts))],
      ],
    ),
  );
}

function report({ records, runs, raw, bare, outpost, link, azure }: Results): void {
  const drainVsRaw = Number(outpost.perSec) / Number(raw.perSec);
  const drainVsBare = Number(outpost.perSec) / Number(bare.perSec);
  const rssMb = Number(outpost.rssMb);
  const linkUpMs = Number(link.linkUpMs);
  // The worse of the two phases: the link may return in either, and the promise holds for both.
  const azureLinkUpMs = Math.max(Number(azure.connectingMs), Number(azure.backoffMs));
  printDrains(raw, bare, outpost, drainVsRaw);
  printLinkUps(runs, link, azure, linkUpMs);
  const pass = {
    drainVsRaw: drainVsRaw >= TARGETS.drainVsRaw,
    linkUpMs: linkUpMs <= TARGETS.linkUpMs,
    azureLinkUpMs: azureLinkUpMs <= TARGETS.azureLinkUpMs,
    rssMb: rssMb <= TARGETS.rssMb,
  };
  console.log(
    `targets: drainVsRaw ${fmt(drainVsRaw, 2)} >= ${TARGETS.drainVsRaw} ${verdict(pass.drainVsRaw)}; ` +
      `linkUpMs ${fmt(linkUpMs)} <= ${TARGETS.linkUpMs} ${verdict(pass.linkUpMs)}; ` +
      `azureLinkUpMs ${fmt(azureLinkUpMs)} <= ${TARGETS.azureLinkUpMs} ${verdict(pass.azureLinkUpMs)}; ` +
      `rssMb ${fmt(rssMb, 1)} <= ${TARGETS.rssMb} ${verdict(pass.rssMb)}`,
  );
  const round = (value: unknown, digits = 0) => Number(Number(value).toFixed(digits));
  console.log(
    JSON.stringify({
      bench: 'uplink',
      records,
      drainVsRaw: round(drainVsRaw, 3),
      drainVsBare: round(drainVsBare, 3),
      linkUpMs: Math.round(linkUpMs),
      linkUpTimeouts: Number(link.timeouts),
      azureLinkUpMs: Math.round(azureLinkUpMs),
      azureLinkUpConnectingMs: round(azure.connectingMs),
      azureLinkUpBackoffMs: round(azure.backoffMs),
      azureLinkUpTimeouts: Number(azure.timeouts),
      rssMb: round(rssMb, 1),
      outpostPerSec: round(outpost.perSec),
      rawPerSec: round(raw.perSec),
      barePerSec: round(bare.perSec),
      outpostCpuUsPerMsg: round(outpost.cpuUsPerMsg, 1),
      rawCpuUsPerMsg: round(raw.cpuUsPerMsg, 1),
      bareCpuUsPerMsg: round(bare.cpuUsPerMsg, 1),
      pass: Object.values(pass).every(Boolean),
    }),
  );
}

async function run(): Promise<void> {
  const records = envInt('OUTPOST_BENCH_UPLINK_RECORDS', RECORDS_DEFAULT);
  const runs = envInt('OUTPOST_BENCH_UPLINK_LINK_RUNS', LINK_UP_RUNS_DEFAULT);
  const azureRuns = envInt('OUTPOST_BENCH_UPLINK_AZURE_RUNS', AZURE_LINK_UP_RUNS_DEFAULT);
  console.log(
    `uplink: ${fmt(records)} records of ${BODY_BYTES} B, window ${WINDOW_MESSAGES}, QoS 1, mosquitto on loopback`,
  );
  report(await measure(records, runs, azureRuns));
}

const bench: BenchModule = { run, child };
export default bench;
