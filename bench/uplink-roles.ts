// The child-process roles of `npm run bench -- uplink`: each runs in its own process so its peak RSS is its own.
import mqtt, { type IClientPublishOptions } from 'mqtt';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../firmware/store/log.js';
import { parseUplinkConfig } from '../firmware/uplink/config.js';
import { UPSTREAM_KEY } from '../firmware/uplink/message.js';
import { startUplink, UPSTREAM_LANE_NAME } from '../firmware/uplink/service.js';
import { Subscriber } from '../test/support/delivery.js';
import { FaultProxy } from '../test/support/fault-proxy.js';
import { freshDir, median, peakRssMb, removeDir, sampleMemory } from './harness.js';

export const GATEWAY_ID = 'gw-bench';
/** A typical small telemetry reading (a JSON object of a few fields). */
export const BODY_BYTES = 200;
/** Both sides keep this many publishes awaiting PUBACK: outpost's default window. */
export const WINDOW_MESSAGES = 100;
/** Appends awaited together while filling the backlog. */
const FILL_BATCH_RECORDS = 2_000;
/** How often the drain's progress is polled, ms; well below the drain's duration. */
const POLL_MS = 5;
/** Link-up runs: the backoff ceiling grows from base to max in a few refused attempts. */
export const LINK_BACKOFF = { baseMs: 100, maxMs: 3_000 };
/** A link-up that has not delivered after this long is a failure, not a figure. */
export const LINK_UP_TIMEOUT_MS = 30_000;
/** Link-up runs whose set-up (reaching the backoff maximum) may be retried, beyond the runs asked for. */
const LINK_UP_RETRIES_MAX = 5;

function body(i: number): Buffer {
  return Buffer.from(JSON.stringify({ n: i, t: 21.5, rh: 40.25 }).padEnd(BODY_BYTES));
}

/**
 * CPU time this process spent since `from` (process.cpuUsage), user + system, µs per message: what a Pi's
 * slower cores have to pay for each drained message, whatever this machine's wall-clock rate.
 */
function cpuUsPerMessage(from: NodeJS.CpuUsage, messages: number): number {
  const used = process.cpuUsage(from);
  return (used.user + used.system) / messages;
}

/** Raw mqtt.js takes its bodies from a small prebuilt pool, so it pays for neither JSON nor a disk. */
const RAW_BODY_POOL_RECORDS = 4_096;

/** Fills the upstream lane with `records` durable records (not timed: the drain is what is measured). */
export async function fill(dir: string, records: number): Promise<Record<string, unknown>> {
  const log = await RingLog.open({ dir, syncMode: 'interval', ttlSecs: 0 });
  const lane = await log.lane(UPSTREAM_LANE_NAME);
  for (let from = 1; from <= records; from += FILL_BATCH_RECORDS) {
    const batch: Array<Promise<number>> = [];
    for (let i = from; i < from + FILL_BATCH_RECORDS && i <= records; i += 1)
      batch.push(lane.append({ body: body(i) }));
    await Promise.all(batch);
  }
  const bytesOnDisk = log.stats().bytesOnDisk;
  await log.close();
  return { bytesOnDisk };
}

export async function until(
  what: string,
  check: () => boolean,
  timeoutMs: number,
  state: () => unknown = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} ${JSON.stringify(state())}`);
    await sleep(POLL_MS);
  }
}

/** outpost drains the filled log to the broker: RingLog + Pump + mqtt transport, through startUplink. */
export async function drainOutpost(dir: string, url: string, records: number): Promise<Record<string, unknown>> {
  const startRssMb = peakRssMb();
  const log = await RingLog.open({ dir, ttlSecs: 0 });
  const lane = await log.lane(UPSTREAM_LANE_NAME);
  const config = parseUplinkConfig({ protocol: 'mqtt', url, inflightMax: WINDOW_MESSAGES }, join(dir, 'board.json'));
  const stopSampling = sampleMemory();
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  const service = await startUplink({ config, gatewayId: GATEWAY_ID, log, dataDir: dir });
  await until('the drain', () => lane.ackedSeq() >= records, 30 * 60_000);
  const drainMs = performance.now() - started;
  const cpuUsPerMsg = cpuUsPerMessage(cpuStart, records);
  const memory = stopSampling();
  await service.stop();
  await log.close();
  return { drainMs, perSec: (records * 1000) / drainMs, cpuUsPerMsg, rssMb: peakRssMb(), startRssMb, ...memory };
}

/**
 * The raw publishers, both QoS 1 with the same window and bodies from memory. `v5-props` is what outpost
 * sends: MQTT 5 with its three user properties and a fresh ISO timestamp per message. `v311-bare` is the
 * cheapest publisher there is: MQTT 3.1.1, the same topic and body, no properties at all.
 */
export type RawVariant = 'v5-props' | 'v311-bare';

function rawOptions(variant: RawVariant, i: number): IClientPublishOptions {
  if (variant === 'v311-bare') return { qos: 1 };
  return {
    qos: 1,
    properties: {
      userProperties: {
        [UPSTREAM_KEY.messageId]: `${GATEWAY_ID}:${UPSTREAM_LANE_NAME}:${i}`,
        [UPSTREAM_KEY.enqueuedAt]: new Date().toISOString(),
        [UPSTREAM_KEY.deviceId]: GATEWAY_ID,
      },
    },
  };
}

/** Raw mqtt.js publishes `records` messages of the drain's topic and body size, the same window and QoS 1. */
export async function drainRaw(url: string, records: number, variant: RawVariant): Promise<Record<string, unknown>> {
  const startRssMb = peakRssMb();
  const protocolVersion = variant === 'v311-bare' ? 4 : 5;
  const clientId = `raw-${variant}-${GATEWAY_ID}`;
  const client = await mqtt.connectAsync(url, { clientId, protocolVersion, reconnectPeriod: 0 });
  const topic = `outpost/${GATEWAY_ID}/${GATEWAY_ID}/telemetry`;
  const pool = Array.from({ length: RAW_BODY_POOL_RECORDS }, (_, i) => body(i));
  const stopSampling = sampleMemory();
  const cpuStart = process.cpuUsage();
  const started = performance.now();
  let next = 1;
  let acked = 0;
  await new Promise<void>((resolve, reject) => {
    const send = (): void => {
      const i = next++;
      client.publish(topic, pool[i % RAW_BODY_POOL_RECORDS]!, rawOptions(variant, i), (err) => {
        if (err) return reject(err);
        acked += 1;
        if (acked === records) resolve();
        else if (next <= records) send();
      });
    };
    for (let k = 0; k < WINDOW_MESSAGES && next <= records; k += 1) send();
  });
  const drainMs = performance.now() - started;
  const cpuUsPerMsg = cpuUsPerMessage(cpuStart, records);
  const memory = stopSampling();
  await client.endAsync();
  return { drainMs, perSec: (records * 1000) / drainMs, cpuUsPerMsg, rssMb: peakRssMb(), startRssMb, ...memory };
}

export async function setOperstate(sysDir: string, up: boolean): Promise<void> {
  await mkdir(join(sysDir, 'wwan0'), { recursive: true });
  await writeFile(join(sysDir, 'wwan0', 'operstate'), up ? 'up\n' : 'down\n');
  await writeFile(join(sysDir, 'wwan0', 'carrier'), up ? '1\n' : '0\n');
}

/** What a link-up run shares with the next: the uplink under test, the broken link, the broker-side subscriber. */
interface LinkUpRig {
  service: Awaited<ReturnType<typeof startUplink>>;
  proxy: FaultProxy;
  sub: Subscriber;
  lane: Awaited<ReturnType<RingLog['lane']>>;
  sysDir: string;
}

/** One outage and link-up: the time to the first backlog message, a failure, or a spoilt set-up to retry. */
async function linkUpRun(
  { service, proxy, sub, lane, sysDir }: LinkUpRig,
  run: number,
): Promise<{ ms: number } | { failure: string } | { retry: true }> {
  // The outage starts on a drained, resynced connection. A cut during the resync hooks is lost by the
  // pump (it has no session yet to end), which then reports "up" on a dead connection and never backs off.
  const status = () => service.status();
  await until('the link up before the outage', () => status().link === 'up', LINK_UP_TIMEOUT_MS, status);
  await setOperstate(sysDir, false);
  proxy.refuse();
  proxy.cut();
  const atMax = () => service.status().backoffCeilingMs >= LINK_BACKOFF.maxMs && service.status().link === 'backoff';
  try {
    // Not reaching the backoff maximum spoils the set-up, not the measurement: that run is retried.
    await until('the backoff maximum', atMax, LINK_UP_TIMEOUT_MS, () => service.status());
  } catch (err) {
    console.error(`uplink link-up run ${run}: set-up retried: ${(err as Error).message}`);
    return { retry: true };
  }
  await lane.append({ body: Buffer.from(String(run)) });
  proxy.pass();
  const restored = performance.now();
  await setOperstate(sysDir, true);
  try {
    await until(
      'the first backlog message',
      () => sub.values.includes(run),
      LINK_UP_TIMEOUT_MS,
      () => service.status(),
    );
    return { ms: performance.now() - restored };
  } catch (err) {
    console.error(`uplink link-up run ${run}: ${(err as Error).message}`);
    // Let the late record arrive (or not) before the next run, so runs do not overlap.
    await until('the late record', () => sub.values.includes(run), LINK_UP_TIMEOUT_MS).catch(() => undefined);
    return { failure: (err as Error).message };
  }
}

/**
 * Link-up → first backlog message at the broker, `runs` times: the proxy refuses and the interface is down
 * until the backoff ceiling reaches its maximum and a record waits; then both come back and the clock runs
 * until a subscriber straight at the broker has the record.
 */
export async function linkUp(brokerPort: number, brokerUrl: string, runs: number): Promise<Record<string, unknown>> {
  const dir = await freshDir('linkup');
  const proxy = await FaultProxy.start({ targetPort: brokerPort });
  const sub = await Subscriber.start(brokerUrl, `outpost/${GATEWAY_ID}-link/+/telemetry`);
  const log = await RingLog.open({ dir: join(dir, 'data'), ttlSecs: 0 });
  const lane = await log.lane(UPSTREAM_LANE_NAME);
  const sysDir = join(dir, 'sys');
  await setOperstate(sysDir, true);
  const config = parseUplinkConfig(
    { protocol: 'mqtt', url: `mqtt://127.0.0.1:${proxy.port}`, interfaces: ['wwan0'], backoff: LINK_BACKOFF },
    join(dir, 'board.json'),
  );
  const service = await startUplink({
    config,
    gatewayId: `${GATEWAY_ID}-link`,
    log,
    dataDir: join(dir, 'data'),
    sysClassNetDir: sysDir,
  });
  const timesMs: number[] = [];
  /**
   * Runs that did not deliver within LINK_UP_TIMEOUT_MS, with the pump's status then: shown, and counted in
   * the median as the timeout.
   */
  const failures: string[] = [];
  let attempts = 0;
  try {
    for (let run = 1; timesMs.length + failures.length < runs && attempts < runs + LINK_UP_RETRIES_MAX; run += 1) {
      attempts += 1;
      const outcome = await linkUpRun({ service, proxy, sub, lane, sysDir }, run);
      if ('ms' in outcome) timesMs.push(outcome.ms);
      else if ('failure' in outcome) failures.push(outcome.failure);
    }
  } finally {
    await service.stop();
    await log.close();
    await sub.close();
    await proxy.close();
    await removeDir(dir);
  }
  const all = [...timesMs, ...failures.map(() => LINK_UP_TIMEOUT_MS)];
  if (all.length === 0) throw new Error(`no link-up run could be set up in ${attempts} attempts`);
  return {
    linkUpMs: median(all),
    linkUpMsMax: Math.max(...all),
    linkUpMsMin: Math.min(...all),
    runs: all.length,
    timeouts: failures.length,
  };
}
