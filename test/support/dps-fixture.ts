import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../../firmware/store/log.js';
import type { BackoffOptions } from '../../firmware/uplink/backoff.js';
import { parseUplinkConfig } from '../../firmware/uplink/config.js';
import { startUplink, type UplinkService } from '../../firmware/uplink/service.js';
import { DpsEmulator, type HubBinding } from './dps-emulator.js';
import { dpsBinding } from './iothub-dps-binding.js';
import { IotHubEmulator } from './iothub-emulator.js';
import { tempDir } from './tmp.js';

/**
 * A DPS emulator linked to two IoT Hub emulators, and a gateway's uplink (the real service, ring log and
 * SDKs) booted against them from a board file's `uplink` section in a temp dir, as often as a test wants.
 */

export const ID_SCOPE = '0ne00000A0A';
const MiB = 1024 * 1024;
const LOG_OPTIONS = {
  segmentBytes: MiB,
  groupCommitBytesMax: MiB / 2,
  recordBytesMax: 64 * 1024,
  quotaBytes: 64 * MiB,
  ttlSecs: 7_200,
};

type Teardown = { teardown(fn: () => unknown): void };

export interface DpsWorld {
  dps: DpsEmulator;
  hubA: IotHubEmulator;
  hubB: IotHubEmulator;
  dir: string;
  /** Writes `text` to `name` in the board's folder; returns the name. */
  file(name: string, text: string): Promise<string>;
  /** Disables a device on the hubs: deleted there, and not created again by DPS's registrations. */
  disableOnHub(deviceId: string): void;
  /** Starts the uplink on the data dir with `provisioning` as board.json's uplink.provisioning. */
  boot(provisioning: Record<string, unknown>, gatewayId: string, opts?: BootOptions): Promise<Gateway>;
}

export interface BootOptions {
  registrationTimeoutMs?: number;
  registrationBackoff?: BackoffOptions;
}

export interface Gateway {
  service: UplinkService;
  log: RingLog;
  errors: Error[];
  /** Appends `count` records numbered from `from` to the upstream lane. */
  append(from: number, count: number): Promise<void>;
  stop(): Promise<void>;
}

export function randomKey(): string {
  return randomBytes(64).toString('base64');
}

export async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** The uplink booted from a board whose provisioning section is `provisioning`, in `dir` (data in dir/data). */
async function bootGateway(
  t: Teardown,
  { endpoint, dir }: { endpoint: string; dir: string },
  provisioning: Record<string, unknown>,
  gatewayId: string,
  opts: BootOptions,
): Promise<Gateway> {
  const dataDir = path.join(dir, 'data');
  const uplink = {
    protocol: 'azure',
    caFile: 'ca.pem',
    backoff: { baseMs: 50, maxMs: 500 },
    provisioning: { globalEndpoint: endpoint, idScope: ID_SCOPE, ...provisioning },
  };
  const config = parseUplinkConfig(uplink, path.join(dir, 'board.json'));
  const log = await RingLog.open({ dir: dataDir, ...LOG_OPTIONS });
  const errors: Error[] = [];
  const service = await startUplink({
    config,
    gatewayId,
    log,
    dataDir,
    onError: (e) => errors.push(e),
    provisioningOverrides: {
      backoff: opts.registrationBackoff ?? { baseMs: 200, maxMs: 1_000 },
      timeoutMs: opts.registrationTimeoutMs,
    },
  }).catch(async (err: unknown) => {
    await log.close();
    throw err;
  });
  const lane = await log.lane('upstream');
  let stopped = false;
  const gateway: Gateway = {
    service,
    log,
    errors,
    async append(from, count) {
      for (let i = from; i < from + count; i += 1) await lane.append({ body: Buffer.from(String(i)) });
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await service.stop();
      await log.close();
    },
  };
  t.teardown(() => gateway.stop());
  return gateway;
}

export async function dpsWorld(t: Teardown): Promise<DpsWorld> {
  const hubA = await IotHubEmulator.start();
  t.teardown(() => hubA.stop());
  const hubB = await IotHubEmulator.start();
  t.teardown(() => hubB.stop());
  // A device disabled on its hub: DPS's registrations no longer create it there, so the hub refuses it.
  const disabled = new Set<string>();
  const bindings = [dpsBinding(hubA), dpsBinding(hubB)].map((binding): HubBinding => ({
    ...binding,
    register: (deviceId, auth) => void (disabled.has(deviceId) || binding.register(deviceId, auth)),
  }));
  const disableOnHub = (deviceId: string) => {
    disabled.add(deviceId);
    for (const binding of bindings) binding.unregister(deviceId);
  };
  const dps = await DpsEmulator.start({ idScope: ID_SCOPE, hubs: bindings });
  t.teardown(() => dps.stop().catch(() => {}));
  const dir = tempDir(t);
  // One CA file for both kinds of endpoint, as the public roots are one bundle for DPS and IoT Hub.
  await writeFile(path.join(dir, 'ca.pem'), dps.ca.cert + hubA.ca.cert + hubB.ca.cert);
  const file = async (name: string, text: string) => {
    await writeFile(path.join(dir, name), text, { mode: 0o600 });
    return name;
  };
  const boot = (provisioning: Record<string, unknown>, gatewayId: string, opts: BootOptions = {}) =>
    bootGateway(t, { endpoint: dps.endpoint, dir }, provisioning, gatewayId, opts);
  return { dps, hubA, hubB, dir, file, boot, disableOnHub };
}

/** The distinct message bodies a hub received, as numbers. */
export function received(hub: IotHubEmulator): Set<number> {
  return new Set(hub.telemetry.map((r) => Number(r.body.toString())));
}
