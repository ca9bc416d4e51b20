// `npm run bench -- bridge`: the do-it-yourself alternative many sites run — a local mosquitto with a
// bridge to the cloud broker, persistence on — against the outpost gateway as shipped, on one workload.
// Children publish QoS 1 to the local side while the link to the cloud is down (the fault proxy refuses
// and has cut the live connection), the local side is SIGKILLed once half-way through and started again,
// the children reconnect and finish, then the link returns. Measured per side: messages acknowledged to the
// children against those the cloud received (lost), link-up → first message at the cloud, drain rate, peak
// RSS and bytes written to disk (/proc/<pid>/io write_bytes) over both lives of the local process.
// OUTPOST_BENCH_BRIDGE_MESSAGES sets the workload and OUTPOST_BENCH_BRIDGE_RUNS the runs per side (small
// numbers for a quick run).
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { Mosquitto } from '../test/support/brokers.js';
import { FaultProxy } from '../test/support/fault-proxy.js';
import { mosquittoBridge, outpostGateway, type LocalSide, type SideCounters } from './bridge-sides.js';
import { envInt, fmt, formatTable, freshDir, median, removeDir, type BenchModule } from './harness.js';
import { REPO } from './ship.js';
import { until } from './uplink-roles.js';

/** Enough for mosquitto's whole-database saves to show (they grow with the backlog), small enough for minutes. */
const MESSAGES_DEFAULT = 5_000;
/** Runs per side; the figures are their medians. */
const RUNS_DEFAULT = 3;
const CHILDREN = 10;
/** Publishes each child keeps awaiting PUBACK: children of a busy site, not one message at a time. */
const CHILD_WINDOW_MESSAGES = 4;
/** The same body size as the uplink benchmark's readings. */
const BODY_BYTES = 200;
/** The local side is killed once this share of the workload has been acknowledged. */
const KILL_AT_SHARE = 0.5;
/** Children reconnect this often while the local side is down, ms. */
const CHILD_RECONNECT_MS = 100;
/** A publish without PUBACK after this long is given up (and not counted as acknowledged), ms. */
const PUBACK_TIMEOUT_MS = 30_000;
/**
 * The drain is over once every acknowledged message arrived, or nothing arrived for this long, ms: well
 * beyond the bridge's retry interval (about 6 s seen from mosquitto 2.0.11 against reset connections, for
 * all its restart_timeout of 1 s), so a late first attempt is not taken for lost messages.
 */
const DRAIN_QUIET_MS = 20_000;
/** Bounds on the phases, so a broken side cannot hang the run, ms. */
const CONNECT_TIMEOUT_MS = 30_000;
const PUBLISH_PHASE_TIMEOUT_MS = 20 * 60_000;
const DRAIN_TIMEOUT_MS = 20 * 60_000;

interface Outcome {
  acked: number;
  delivered: number;
  lost: number;
  linkUpMs: number;
  drainPerSec: number;
  /** Connections the side opened towards the cloud while the link was down, and the outage's length. */
  outageConnects: number;
  outageSecs: number;
  counters: SideCounters;
}

/** The cloud's view: a persistent QoS 1 subscriber straight at the cloud broker. */
class CloudCounter {
  readonly values = new Set<number>();
  firstAtMs: number | null = null;
  lastAtMs: number | null = null;

  private constructor(private readonly client: MqttClient) {
    client.on('message', (_topic, payload) => {
      const value = Number(payload.toString());
      if (!Number.isInteger(value) || value < 1) return;
      const now = performance.now();
      this.firstAtMs ??= now;
      this.lastAtMs = now;
      this.values.add(value);
    });
  }

  static async start(url: string): Promise<CloudCounter> {
    const client = await mqtt.connectAsync(url, { clientId: 'bench-cloud', clean: false, protocolVersion: 4 });
    const counter = new CloudCounter(client);
    await client.subscribeAsync('#', { qos: 1 });
    return counter;
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}

function body(value: number): Buffer {
  return Buffer.from(String(value).padEnd(BODY_BYTES));
}

/** One child's share, CHILD_WINDOW_MESSAGES at a time; every value whose PUBACK came back goes in `acked`. */
async function publishShare(client: MqttClient, id: string, values: number[], acked: Set<number>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < values.length) {
      const value = values[next++]!;
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), PUBACK_TIMEOUT_MS)));
      const topic = `devices/${id}/messages/events/`;
      const publish = client.publishAsync(topic, body(value), { qos: 1 }).then(
        () => true,
        () => false,
      );
      if (await Promise.race([publish, timeout])) acked.add(value);
      clearTimeout(timer);
    }
  };
  await Promise.all(Array.from({ length: CHILD_WINDOW_MESSAGES }, lane));
}

/** The children publish `messages` in all; the side is killed and restarted once, mid-way. Returns the acked. */
async function publishPhase(side: LocalSide, messages: number): Promise<Set<number>> {
  const acked = new Set<number>();
  const clients = side.children.map((child) =>
    mqtt.connect(`mqtt://127.0.0.1:${side.port}`, {
      ...side.login(child),
      protocolVersion: 4,
      reconnectPeriod: CHILD_RECONNECT_MS,
      connectTimeout: CONNECT_TIMEOUT_MS,
    }),
  );
  for (const client of clients) client.on('error', () => {});
  await until('the children connected', () => clients.every((c) => c.connected), CONNECT_TIMEOUT_MS);
  const all = Array.from({ length: messages }, (_, v) => v + 1);
  const shares = side.children.map((_, i) => all.filter((v) => v % CHILDREN === i));
  const publishing = Promise.all(clients.map((c, i) => publishShare(c, side.children[i]!.id, shares[i]!, acked)));
  const half = () => acked.size >= messages * KILL_AT_SHARE;
  await until('half of the workload acknowledged', half, PUBLISH_PHASE_TIMEOUT_MS);
  await side.kill();
  await side.start();
  await publishing;
  await Promise.all(clients.map((c) => c.endAsync(true)));
  return acked;
}

/** Runs the workload against one side, with its own cloud broker and link. */
type SideMaker = (dir: string, cloudPort: number, cloudUrl: string) => Promise<LocalSide>;

async function scenario(makeSide: SideMaker, messages: number): Promise<Outcome> {
  const cloud = await Mosquitto.start({ persistence: false });
  const proxy = await FaultProxy.start({ targetPort: cloud.port });
  const counter = await CloudCounter.start(cloud.url);
  const dir = await freshDir('bridge');
  const side = await makeSide(dir, proxy.port, cloud.url);
  let stopped = false;
  try {
    await side.start();
    const connected = () => proxy.connectionCount > 0 && proxy.bytesToClient > 0;
    await until(`${side.name} connected to the cloud`, connected, CONNECT_TIMEOUT_MS);
    proxy.refuse();
    proxy.cut();
    const outage = { atMs: performance.now(), accepted: proxy.acceptedCount };
    const acked = await publishPhase(side, messages);
    console.log(`bridge: ${side.name}: ${fmt(acked.size)} of ${fmt(messages)} acknowledged to children; link returns`);
    const outageConnects = proxy.acceptedCount - outage.accepted;
    proxy.pass();
    const passAtMs = performance.now();
    side.linkUp();
    const quiet = () => performance.now() - Math.max(passAtMs, counter.lastAtMs ?? 0) > DRAIN_QUIET_MS;
    const covered = () => [...acked].every((v) => counter.values.has(v));
    await until('the drain', () => (counter.values.size >= acked.size && covered()) || quiet(), DRAIN_TIMEOUT_MS);
    const lost = [...acked].filter((v) => !counter.values.has(v)).length;
    const drainSecs = ((counter.lastAtMs ?? NaN) - (counter.firstAtMs ?? NaN)) / 1000;
    stopped = true;
    return {
      acked: acked.size,
      delivered: counter.values.size,
      lost,
      linkUpMs: (counter.firstAtMs ?? NaN) - passAtMs,
      drainPerSec: counter.values.size / drainSecs,
      outageConnects,
      outageSecs: (passAtMs - outage.atMs) / 1000,
      counters: await side.stop(),
    };
  } finally {
    if (!stopped) await side.stop();
    await counter.close();
    await proxy.close();
    await cloud.stop();
    await removeDir(dir);
  }
}

/** Runs taken together: counts summed over them, rates and bytes their medians, RSS its peak. */
function summarize(runs: Outcome[]): Outcome {
  const sum = (pick: (o: Outcome) => number) => runs.reduce((total, o) => total + pick(o), 0);
  const mid = (pick: (o: Outcome) => number) => median(runs.map(pick));
  return {
    acked: sum((o) => o.acked),
    delivered: sum((o) => o.delivered),
    lost: sum((o) => o.lost),
    linkUpMs: mid((o) => o.linkUpMs),
    drainPerSec: mid((o) => o.drainPerSec),
    outageConnects: sum((o) => o.outageConnects),
    outageSecs: sum((o) => o.outageSecs),
    counters: {
      peakRssMb: Math.max(...runs.map((o) => o.counters.peakRssMb)),
      writeBytes: mid((o) => o.counters.writeBytes),
      cancelledWriteBytes: mid((o) => o.counters.cancelledWriteBytes),
    },
  };
}

function report(messages: number, runs: number, settings: string[], outpost: Outcome, bridge: Outcome): void {
  console.log(
    `\nbridge: ${fmt(messages)} messages of ${BODY_BYTES} B from ${CHILDREN} children, QoS 1, ` +
      `${CHILD_WINDOW_MESSAGES} in flight each, one SIGKILL at ${KILL_AT_SHARE * 100}%; ${runs} runs per side, ` +
      'alternating; counts summed over the runs, link-up, drain and disk bytes their medians, RSS the peak',
  );
  for (const line of settings) console.log(`  ${line}`);
  const row = (name: string, o: Outcome) => [
    name,
    fmt(o.acked),
    fmt(o.delivered),
    fmt(o.lost),
    fmt(o.linkUpMs),
    fmt(o.drainPerSec),
    fmt(o.counters.peakRssMb, 1),
    fmt(o.counters.writeBytes / 2 ** 20, 1),
    fmt(o.counters.cancelledWriteBytes / 2 ** 20, 1),
    `${fmt(o.outageConnects)} in ${fmt(o.outageSecs)} s`,
  ];
  const header = [
    'local side',
    'acked',
    'delivered',
    'lost',
    'link-up ms',
    'drain msgs/s',
    'peak RSS MiB',
    'disk written MiB',
    'cancelled MiB',
    'connects during outages',
  ];
  console.log(formatTable(header, [row('mosquitto bridge', bridge), row('outpost', outpost)]));
  const round = (value: number, digits = 0) => Number(value.toFixed(digits));
  console.log(
    JSON.stringify({
      bench: 'bridge',
      messages,
      runs,
      outpostLost: outpost.lost,
      bridgeLost: bridge.lost,
      outpostAcked: outpost.acked,
      bridgeAcked: bridge.acked,
      linkUpVsBridge: round(outpost.linkUpMs / bridge.linkUpMs, 3),
      drainVsBridge: round(outpost.drainPerSec / bridge.drainPerSec, 3),
      outpostLinkUpMs: round(outpost.linkUpMs),
      bridgeLinkUpMs: round(bridge.linkUpMs),
      outpostDrainPerSec: round(outpost.drainPerSec),
      bridgeDrainPerSec: round(bridge.drainPerSec),
      outpostPeakRssMb: round(outpost.counters.peakRssMb, 1),
      bridgePeakRssMb: round(bridge.counters.peakRssMb, 1),
      outpostWriteBytes: outpost.counters.writeBytes,
      bridgeWriteBytes: bridge.counters.writeBytes,
    }),
  );
}

async function run(): Promise<void> {
  const messages = envInt('OUTPOST_BENCH_BRIDGE_MESSAGES', MESSAGES_DEFAULT);
  const runs = envInt('OUTPOST_BENCH_BRIDGE_RUNS', RUNS_DEFAULT);
  execFileSync(process.execPath, [join(REPO, 'scripts/build.js'), 'firmware/main.ts'], { cwd: REPO, stdio: 'inherit' });
  const settings = new Map<string, string>();
  const keep =
    (make: SideMaker): SideMaker =>
    async (dir, port, url) => {
      const side = await make(dir, port, url);
      settings.set(side.name, side.settings);
      return side;
    };
  const bridge: Outcome[] = [];
  const outpost: Outcome[] = [];
  // Alternating, so a change in the machine's load during the run falls on both sides alike.
  for (let i = 0; i < runs; i += 1) {
    bridge.push(
      await scenario(
        keep((dir, port) => mosquittoBridge(dir, port, CHILDREN)),
        messages,
      ),
    );
    outpost.push(
      await scenario(
        keep((dir, port, url) => outpostGateway(dir, port, CHILDREN, url)),
        messages,
      ),
    );
  }
  report(messages, runs, [...settings.values()], summarize(outpost), summarize(bridge));
}

async function child(role: string): Promise<Record<string, unknown>> {
  throw new Error(`bridge bench has no child role "${role}"`);
}

export default { run, child } satisfies BenchModule;
