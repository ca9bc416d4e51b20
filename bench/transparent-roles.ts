// The child-process roles of `npm run bench -- transparent`: the backlog's fill and the gateway. Each runs in
// its own process, which loads this file and what ships (the ring log, the uplink service, the SDK), never
// the IoT Hub emulator or other test code: the gateway's peak RSS is the shipped code's.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../firmware/store/log.js';
import { RECORD_KEY } from '../firmware/uplink/message.js';
import { parseUplinkConfig } from '../firmware/uplink/config.js';
import { startUplink, UPSTREAM_LANE_NAME } from '../firmware/uplink/service.js';
import { HELD_LANE_NAME } from '../firmware/uplink/edge/held.js';
import { send } from './harness.js';

export const GATEWAY_ID = 'gw-bench';
/** Records per appendBatch while filling the backlog (the store's limit is 10,000). */
const FILL_BATCH_RECORDS = 5_000;
/** Message body, bytes: a typical JSON reading. */
const BODY_BYTES = 200;
/** A drain that has not finished after this long is reported as failed, ms. */
const DRAIN_TIMEOUT_MS = 15 * 60 * 1000;
/** The bench log's quota, bytes: room for the whole backlog, so nothing is dropped for space. */
const LOG_QUOTA_BYTES = 4 * 1024 ** 3;

/** This process's peak resident set so far (VmHWM in /proc/self/status), MiB: no sample can miss it. */
function vmHwmMb(): number {
  const status = readFileSync('/proc/self/status', 'utf8');
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN) / 1024;
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
  const service = await startUplink({ config, gatewayId: GATEWAY_ID, log, dataDir: join(dir, 'data') });
  // Edge mode's holding lane too: records parked there are done upstream but not yet delivered.
  const held = service.status().edge === undefined ? null : await log.lane(HELD_LANE_NAME);
  const drained = (lane: typeof upstream | null) => lane === null || lane.ackedSeq() >= lane.lastDurableSeq();
  await until('the backlog drained', () => drained(upstream) && drained(held), DRAIN_TIMEOUT_MS);
  const drainMs = performance.now() - startedAt;
  // The process's whole peak: the fill ran in a process of its own, so this is the drain's (and start-up's).
  const rssMb = vmHwmMb();
  const connections = service.status().edge?.connections ?? 1;
  await service.stop();
  await log.close();
  return { drainMs, rssMb, connections };
}

export async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  if (role === 'fill') return fill(args);
  if (role === 'gateway') return gateway(args);
  throw new Error(`unknown transparent role "${role}"`);
}
