// `npm run bench -- transparent`: a transparent gateway's drain in edge mode (each child up on its own
// connection, authenticated on its behalf) against the same backlog in device mode (everything on the
// gateway's one connection), to the IoT Hub emulator through the real azure-iot-device SDK. The gateway runs
// in a child process (the real uplink service from a board.json section, the real ring log), so its RSS is
// its own; the emulator, which keeps every message it receives, stays in the parent.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../firmware/store/log.js';
import { RECORD_KEY } from '../firmware/uplink/message.js';
import { parseUplinkConfig } from '../firmware/uplink/config.js';
import { startUplink, UPSTREAM_LANE_NAME } from '../firmware/uplink/service.js';
import { IotHubEmulator } from '../test/support/iothub-emulator.js';
import { envInt, fmt, formatTable, freshDir, median, removeDir, runChild, send, type BenchModule } from './harness.js';

/** The workload: 100,000 messages spread over 50 children. */
const MESSAGES_DEFAULT = 100_000;
const CHILDREN_DEFAULT = 50;
/** Runs per mode; the figures are medians over them. */
const RUNS_DEFAULT = 3;
/** Records per appendBatch while filling the backlog (the store's limit is 10,000). */
const FILL_BATCH_RECORDS = 5_000;
/** Message body, bytes: a typical JSON reading. */
const BODY_BYTES = 200;
/** A drain that has not finished after this long is reported as failed, ms. */
const DRAIN_TIMEOUT_MS = 15 * 60 * 1000;
const TARGETS = { edgeVsDevice: 0.7, firstPerChildP95Ms: 5_000, rssMb: 96 };
const GATEWAY_ID = 'gw-bench';
/** RSS sampling period during the drain, ms: the SDK clients' buffers come and go within a second. */
const RSS_SAMPLE_MS = 50;
/** The bench log's quota, bytes: room for the whole backlog, so nothing is dropped for space. */
const LOG_QUOTA_BYTES = 4 * 1024 ** 3;

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

async function until(what: string, check: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * The backlog, written while offline by a process of its own: a gateway that comes back online opens a log
 * filled before, so the fill's heap (100,000 appends) is not the drain's RSS.
 */
async function fill(args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const messages = Number(args.messages);
  const children = Number(args.children);
  const log = await RingLog.open({ dir: join(String(args.dir), 'data'), ttlSecs: 0, quotaBytes: LOG_QUOTA_BYTES });
  const upstream = await log.lane(UPSTREAM_LANE_NAME);
  const body = Buffer.alloc(BODY_BYTES, 'x');
  for (let n = 0; n < messages; n += FILL_BATCH_RECORDS) {
    const inputs = Array.from({ length: Math.min(FILL_BATCH_RECORDS, messages - n) }, (_, i) => ({
      body,
      properties: { [RECORD_KEY.deviceId]: `child-${(n + i) % children}` },
    }));
    await upstream.appendBatch(inputs);
  }
  await log.close();
  return {};
}

/** The gateway: opens the filled log, starts the uplink and drains the backlog to the end. */
async function gateway(args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const dir = String(args.dir);
  const log = await RingLog.open({ dir: join(dir, 'data'), ttlSecs: 0, quotaBytes: LOG_QUOTA_BYTES });
  const upstream = await log.lane(UPSTREAM_LANE_NAME);
  const config = parseUplinkConfig(args.uplink, join(dir, 'board.json'));
  await send({ phase: 'link-up', atMs: Date.now() });
  const startedAt = performance.now();
  // The drain's own peak, not the fill's: sampled from link-up to the end of the backlog.
  let rssMb = 0;
  // process.memoryUsage.rss(), not memoryUsage(): the latter walks the heap and cost 3 % of the CPU here.
  const sampler = setInterval(() => (rssMb = Math.max(rssMb, process.memoryUsage.rss() / 2 ** 20)), RSS_SAMPLE_MS);
  const service = await startUplink({ config, gatewayId: GATEWAY_ID, log, dataDir: join(dir, 'data') });
  await until('the backlog drained', () => upstream.ackedSeq() >= upstream.lastDurableSeq(), DRAIN_TIMEOUT_MS);
  const drainMs = performance.now() - startedAt;
  clearInterval(sampler);
  const connections = service.status().edge?.connections ?? 1;
  await service.stop();
  await log.close();
  return { drainMs, rssMb, connections };
}

/** One run of one mode: a fresh emulator registry and data directory, the gateway in its own process. */
async function runMode(mode: Mode, messages: number, children: number): Promise<RunResult> {
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
    let received = 0;
    hub.onTelemetry((record) => {
      received += 1;
      if (!firstAt.has(record.deviceId)) firstAt.set(record.deviceId, Date.now());
    });
    const uplink = {
      protocol: 'azure',
      connectionString: strings.device,
      caFile: 'hub-ca.pem',
      ...(mode === 'edge' ? { azure: { edgeHubConnectionStringFile: 'edgehub-cs' } } : {}),
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
    if (received < messages) throw new Error(`${mode}: the emulator received ${received} of ${messages} messages`);
    const childFirsts = [...firstAt].filter(([id]) => id.startsWith('child-')).map(([, at]) => at - linkUpAtMs);
    const drainMs = Number(result.drainMs);
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
    formatTable(['mode', 'msg/s', 'drain s', 'peak RSS MB', 'connections', 'first/child med ms', 'p95 ms'], rows),
  );
  const edgeVsDevice = of('edge', 'msgPerSec') / of('device', 'msgPerSec');
  const rssMb = of('edge', 'rssMb');
  const mbPerConnection = (rssMb - of('device', 'rssMb')) / Math.max(1, of('edge', 'connections'));
  const firstPerChildP95Ms = of('edge', 'firstPerChildP95Ms');
  console.log(
    `targets: edgeVsDevice >= ${TARGETS.edgeVsDevice}, first-per-child p95 <= ${TARGETS.firstPerChildP95Ms} ms, ` +
      `RSS <= ${TARGETS.rssMb} MB`,
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

async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (role === 'fill') return fill(args);
  if (role === 'gateway') return gateway(args);
  throw new Error(`unknown transparent role "${role}"`);
}

const bench: BenchModule = { run, child };
export default bench;
