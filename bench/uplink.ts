// `npm run bench -- uplink`: a backlog drained through outpost (RingLog + Pump + mqtt transport) to a
// local mosquitto against raw mqtt.js publishing the same records with the same window and QoS 1; the time
// from link-up to the first backlog message at the broker; peak RSS during the drain. Each side runs in
// its own child process, with the V8 flags `npm run bench` passes, which are the gateway's own
// (scripts/node-flags.json). OUTPOST_BENCH_UPLINK_RECORDS shrinks the backlog for a quick run.
import { existsSync } from 'node:fs';
import { envInt, fmt, formatTable, freshDir, removeDir, runChild, type BenchModule, type ChildResult } from './harness.js';
import { BODY_BYTES, WINDOW_MESSAGES, drainOutpost, drainRaw, fill, linkUp } from './uplink-roles.js';

/** The backlog: 1,000,000 records. */
const RECORDS_DEFAULT = 1_000_000;
/** Link-up measurements; the median is reported. */
const LINK_UP_RUNS_DEFAULT = 10;
const WARM_UP_RECORDS = 20_000;
const TARGETS = { drainVsRaw: 0.8, linkUpMs: 1_000, rssMb: 80 };

async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const records = Number(args.records);
  switch (role) {
    case 'fill':
      return fill(String(args.dir), records);
    case 'outpost':
      return drainOutpost(String(args.dir), String(args.url), records);
    case 'raw':
      return drainRaw(String(args.url), records);
    case 'linkup':
      return linkUp(Number(args.port), String(args.url), Number(args.runs));
    default:
      throw new Error(`uplink bench has no child role "${role}"`);
  }
}

function verdict(ok: boolean): string {
  return ok ? 'PASS' : 'MISS';
}

async function run(): Promise<void> {
  // Loaded here, not at the top: the drain children evaluate this module too, and aedes (which brokers.ts
  // also offers) would add to the resident memory they measure.
  const { Mosquitto, MOSQUITTO_PATH } = await import('../test/support/brokers.js');
  if (!existsSync(MOSQUITTO_PATH)) throw new Error(`uplink bench needs mosquitto at ${MOSQUITTO_PATH} (scripts/install-system-deps.sh)`);
  const records = envInt('OUTPOST_BENCH_UPLINK_RECORDS', RECORDS_DEFAULT);
  const runs = envInt('OUTPOST_BENCH_UPLINK_LINK_RUNS', LINK_UP_RUNS_DEFAULT);
  console.log(`uplink: ${fmt(records)} records of ${BODY_BYTES} B, window ${WINDOW_MESSAGES}, QoS 1, mosquitto on loopback`);
  const broker = await Mosquitto.start({ persistence: false });
  const dir = await freshDir('uplink');
  let outpost: ChildResult;
  let raw: ChildResult;
  let link: ChildResult;
  try {
    const filled = await runChild('uplink', 'fill', { dir, records });
    console.log(`uplink: backlog filled (${fmt(Number(filled.bytesOnDisk) / 2 ** 20, 1)} MiB on disk)`);
    // A short unmeasured run first, so neither side pays for a cold broker.
    await runChild('uplink', 'raw', { url: broker.url, records: Math.min(records, WARM_UP_RECORDS) });
    raw = await runChild('uplink', 'raw', { url: broker.url, records });
    outpost = await runChild('uplink', 'outpost', { dir, url: broker.url, records });
    link = await runChild('uplink', 'linkup', { port: broker.port, url: broker.url, runs });
  } finally {
    await removeDir(dir);
    await broker.stop();
  }
  const drainVsRaw = Number(outpost.perSec) / Number(raw.perSec);
  const rssMb = Number(outpost.rssMb);
  const linkUpMs = Number(link.linkUpMs);
  const rows = [
    ['raw mqtt.js', fmt(Number(raw.perSec)), fmt(Number(raw.drainMs) / 1000, 1), fmt(Number(raw.startRssMb), 1), fmt(Number(raw.rssMb), 1), fmt(Number(raw.heapTotalMbMax), 1), '', ''],
    ['outpost', fmt(Number(outpost.perSec)), fmt(Number(outpost.drainMs) / 1000, 1), fmt(Number(outpost.startRssMb), 1), fmt(rssMb, 1), fmt(Number(outpost.heapTotalMbMax), 1), fmt(drainVsRaw, 2), ''],
    ['link-up → first msg', '', '', '', '', '', '', `${fmt(linkUpMs)} (min ${fmt(Number(link.linkUpMsMin))}, max ${fmt(Number(link.linkUpMsMax))}, timeouts ${fmt(Number(link.timeouts))})`],
  ];
  console.log(formatTable(['uplink', 'msgs/s', 'drain s', 'RSS at start MiB', 'peak RSS MiB', 'peak heap MiB', 'vs raw', `link-up ms, median of ${runs}`], rows));
  console.log(
    `targets: drainVsRaw ${fmt(drainVsRaw, 2)} >= ${TARGETS.drainVsRaw} ${verdict(drainVsRaw >= TARGETS.drainVsRaw)}; ` +
      `linkUpMs ${fmt(linkUpMs)} <= ${TARGETS.linkUpMs} ${verdict(linkUpMs <= TARGETS.linkUpMs)}; ` +
      `rssMb ${fmt(rssMb, 1)} <= ${TARGETS.rssMb} ${verdict(rssMb <= TARGETS.rssMb)}`,
  );
  console.log(
    JSON.stringify({
      bench: 'uplink',
      records,
      drainVsRaw: Number(drainVsRaw.toFixed(3)),
      linkUpMs: Math.round(linkUpMs),
      linkUpTimeouts: Number(link.timeouts),
      rssMb: Number(rssMb.toFixed(1)),
      outpostPerSec: Math.round(Number(outpost.perSec)),
      rawPerSec: Math.round(Number(raw.perSec)),
      pass: drainVsRaw >= TARGETS.drainVsRaw && linkUpMs <= TARGETS.linkUpMs && rssMb <= TARGETS.rssMb,
    }),
  );
}

const bench: BenchModule = { run, child };
export default bench;
