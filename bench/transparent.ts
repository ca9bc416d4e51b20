// `npm run bench -- transparent`: a transparent gateway's drain in edge mode (each child up on its own
// connection, authenticated on its behalf) against the same backlog in device mode (everything on the
// gateway's one connection), to the IoT Hub emulator through the real azure-iot-device SDK. The gateway runs
// in a child process (the real uplink service from a board.json section, the real ring log), so its RSS is
// its own; the emulator, which keeps every message it receives, stays in the parent: it is imported
// dynamically, so the roles' processes (bench/transparent-roles.ts) load only what ships.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { envInt, fmt, formatTable, freshDir, median, removeDir, runChild, type BenchModule } from './harness.js';
import { child, GATEWAY_ID } from './transparent-roles.js';

/** The workload: 100,000 messages spread over 50 children. */
const MESSAGES_DEFAULT = 100_000;
const CHILDREN_DEFAULT = 50;
/** Runs per mode; the figures are medians over them. */
const RUNS_DEFAULT = 3;
const TARGETS = { edgeVsDevice: 0.7, firstPerChildP95Ms: 5_000, rssMb: 96 };

type Mode = 'edge' | 'device';

interface RunResult {
  mode: Mode;
  msgPerSec: number;
  drainMs: number;
  rssMb: number;
  firstPerChildMedianMs: number;
  firstPerChildP95Ms: number;
  connections: number;
}

function percentile(values: number[], share: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(share * sorted.length) - 1)] ?? NaN;
}

/** One run of one mode: a fresh emulator registry and data directory, the gateway in its own process. */
async function runMode(mode: Mode, messages: number, children: number): Promise<RunResult> {
  // The pacing of edge mode's connects; board.json's default unless set (to compare settings).
  const connectsPerSec = process.env.OUTPOST_BENCH_TRANSPARENT_CONNECTS_PER_SEC
    ? envInt('OUTPOST_BENCH_TRANSPARENT_CONNECTS_PER_SEC', 0)
    : undefined;
  const { IotHubEmulator } = await import('../test/support/iothub-emulator.js');
  const hub = await IotHubEmulator.start();
  const dir = await freshDir('transparent');
  try {
    const strings = hub.createEdgeDevice(GATEWAY_ID);
    for (let i = 0; i < children; i += 1) {
      hub.createDevice(`child-${i}`);
      hub.addChild(GATEWAY_ID, `child-${i}`);
    }
    await writeFile(join(dir, 'hub-ca.pem'), hub.ca.cert);
    await writeFile(join(dir, 'edgehub-cs'), strings.edgeHub);
    const firstAt = new Map<string, number>();
    // Distinct message ids: a message sent again (a replayed window) is not counted twice.
    const seen = new Set<string>();
    let lastNewAtMs = 0;
    hub.onTelemetry((record) => {
      const id = record.properties['$.mid'] ?? `${seen.size}`;
      if (seen.has(id)) return;
      seen.add(id);
      lastNewAtMs = Date.now();
      if (!firstAt.has(record.deviceId)) firstAt.set(record.deviceId, lastNewAtMs);
    });
    const uplink = {
      protocol: 'azure',
      connectionString: strings.device,
      caFile: 'hub-ca.pem',
      ...(mode === 'edge' ? { azure: { edgeHubConnectionStringFile: 'edgehub-cs' } } : {}),
      ...(connectsPerSec === undefined ? {} : { cloudConnectsPerSecMax: connectsPerSec }),
    };
    let linkUpAtMs = 0;
    await runChild('transparent', 'fill', { dir, messages, children });
    const result = await runChild(
      'transparent',
      'gateway',
      { dir, uplink },
      {
        onMessage: (msg) => void (linkUpAtMs = Number(msg.atMs)),
      },
    );
    if (seen.size < messages) throw new Error(`${mode}: the emulator received ${seen.size} of ${messages} messages`);
    const childFirsts = [...firstAt].filter(([id]) => id.startsWith('child-')).map(([, at]) => at - linkUpAtMs);
    // The drain ends when IoT Hub has the last message, not when the store's cursor says so: in edge mode a
    // record parked in the holding lane is done in the upstream lane before it is delivered.
    const drainMs = Math.max(Number(result.drainMs), lastNewAtMs - linkUpAtMs);
    return {
      mode,
      drainMs,
      msgPerSec: (messages * 1000) / drainMs,
      rssMb: Number(result.rssMb),
      connections: Number(result.connections),
      firstPerChildMedianMs: mode === 'edge' ? median(childFirsts) : NaN,
      firstPerChildP95Ms: mode === 'edge' ? percentile(childFirsts, 0.95) : NaN,
    };
  } finally {
    await hub.stop();
    await removeDir(dir);
  }
}

async function run(): Promise<void> {
  const messages = envInt('OUTPOST_BENCH_TRANSPARENT_MESSAGES', MESSAGES_DEFAULT);
  const children = envInt('OUTPOST_BENCH_TRANSPARENT_CHILDREN', CHILDREN_DEFAULT);
  const runs = envInt('OUTPOST_BENCH_TRANSPARENT_RUNS', RUNS_DEFAULT);
  const results: RunResult[] = [];
  // Interleaved, so a machine that slows down during the run slows both modes alike.
  for (let r = 0; r < runs; r += 1)
    for (const mode of ['device', 'edge'] as const) results.push(await runMode(mode, messages, children));
  const of = (mode: Mode, key: keyof RunResult) =>
    median(results.filter((x) => x.mode === mode).map((x) => Number(x[key])));
  const rows = (['device', 'edge'] as const).map((mode) => [
    mode,
    fmt(of(mode, 'msgPerSec')),
    fmt(of(mode, 'drainMs') / 1000, 1),
    fmt(of(mode, 'rssMb'), 1),
    fmt(of(mode, 'connections')),
    fmt(of(mode, 'firstPerChildMedianMs')),
    fmt(of(mode, 'firstPerChildP95Ms')),
  ]);
  console.log(`transparent: ${fmt(messages)} messages over ${children} children, median of ${runs} runs per mode`);
  console.log(
    formatTable(
      ['mode', 'msg/s', 'drain s', 'peak RSS MB (VmHWM)', 'connections', 'first/child med ms', 'p95 ms'],
      rows,
    ),
  );
  const edgeVsDevice = of('edge', 'msgPerSec') / of('device', 'msgPerSec');
  const rssMb = of('edge', 'rssMb');
  const mbPerConnection = (rssMb - of('device', 'rssMb')) / Math.max(1, of('edge', 'connections'));
  const firstPerChildP95Ms = of('edge', 'firstPerChildP95Ms');
  console.log(
    `targets: edgeVsDevice >= ${TARGETS.edgeVsDevice}, first-per-child p95 <= ${TARGETS.firstPerChildP95Ms} ms, ` +
      `peak RSS (VmHWM) <= ${TARGETS.rssMb} MB`,
  );
  console.log(
    JSON.stringify({
      edgeVsDevice: Number(edgeVsDevice.toFixed(2)),
      firstPerChildP95Ms: Math.round(firstPerChildP95Ms),
      rssMb: Number(rssMb.toFixed(1)),
      mbPerConnection: Number(mbPerConnection.toFixed(2)),
      firstPerChildMedianMs: Math.round(of('edge', 'firstPerChildMedianMs')),
      edgeMsgPerSec: Math.round(of('edge', 'msgPerSec')),
      deviceMsgPerSec: Math.round(of('device', 'msgPerSec')),
      deviceRssMb: Number(of('device', 'rssMb').toFixed(1)),
      messages,
      children,
      runs,
    }),
  );
}

const bench: BenchModule = { run, child };
export default bench;
