// The azure link-up role of `npm run bench -- uplink`: link up → first backlog message at the IoT Hub
// emulator, through the real azure-iot-device SDK, after a black-holed outage. Loaded only by the child that
// runs it: the emulator brings aedes and the SDK, which the drain children must not carry in their RSS.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../firmware/store/log.js';
import { parseUplinkConfig } from '../firmware/uplink/config.js';
import { startUplink, UPSTREAM_LANE_NAME, type UplinkService } from '../firmware/uplink/service.js';
import { FaultProxy } from '../test/support/fault-proxy.js';
import { IotHubEmulator } from '../test/support/iothub-emulator.js';
import { freshDir, median, removeDir } from './harness.js';
import { GATEWAY_ID, LINK_UP_TIMEOUT_MS, setOperstate, until } from './uplink-roles.js';

/**
 * Where the pump is when the link returns. In a black hole a connect attempt hangs until the pump's
 * connectTimeoutMs (15 s by default) and the backoff sleeps between attempts are at most AZURE_BACKOFF.maxMs,
 * so `connecting` is where a returning link mostly finds it; `backoff` is the other case.
 */
export type AzurePhase = 'connecting' | 'backoff';
const PHASES: AzurePhase[] = ['connecting', 'backoff'];
/**
 * How long the link returns into a connect attempt, ms: long enough that the attempt has sent its TLS
 * ClientHello into the black hole and is stuck there, short against the 15 s connect timeout.
 */
const CONNECTING_HOLD_MS = 1_000;
/**
 * The backoff phase is a link returning while the pump sleeps, woken before the sleep ends: the sleep left
 * must outlast the link watch's 200 ms poll, or the sleep's own end starts an attempt the wake then aborts.
 */
const BACKOFF_SLEEP_LEFT_MS_MIN = 500;
/**
 * A fixed 3 s ceiling from the first failure: with full jitter most sleeps then leave BACKOFF_SLEEP_LEFT_MS_MIN,
 * where a ceiling growing from 100 ms would take many 15 s hung connects to get there.
 */
const AZURE_BACKOFF = { baseMs: 3_000, maxMs: 3_000 };
/** Setting up a phase waits through at most a few hung connects (15 s each by default). */
const PHASE_SET_UP_TIMEOUT_MS = 90_000;

interface Rig {
  hub: IotHubEmulator;
  proxy: FaultProxy;
  log: RingLog;
  service: UplinkService;
  sysDir: string;
  bodies: Set<string>;
}

async function startRig(dir: string): Promise<Rig> {
  const hub = await IotHubEmulator.start();
  const proxy = await FaultProxy.start({ targetPort: hub.port });
  const bodies = new Set<string>();
  hub.onTelemetry((record) => void bodies.add(record.body.toString()));
  const log = await RingLog.open({ dir: join(dir, 'data'), ttlSecs: 0 });
  const sysDir = join(dir, 'sys');
  await setOperstate(sysDir, true);
  const gatewayId = `${GATEWAY_ID}-az`;
  await writeFile(join(dir, 'hub-ca.pem'), hub.ca.cert);
  // The gateway's defaults (connect and publish timeouts among them), as a board.json would give them;
  // only the backoff is narrowed, as in the mqtt link-up runs (see AZURE_BACKOFF).
  const config = parseUplinkConfig(
    {
      protocol: 'azure',
      connectionString: hub.addDevice(gatewayId, `localhost:${proxy.port}`),
      caFile: 'hub-ca.pem',
      interfaces: ['wwan0'],
      backoff: AZURE_BACKOFF,
    },
    join(dir, 'board.json'),
  );
  const service = await startUplink({ config, gatewayId, log, dataDir: join(dir, 'data'), sysClassNetDir: sysDir });
  return { hub, proxy, log, service, sysDir, bodies };
}

async function stopRig(rig: Rig): Promise<void> {
  await rig.service.stop();
  await rig.log.close();
  await rig.proxy.close();
  await rig.hub.stop();
}

/**
 * Puts the pump where `phase` says, inside a black-holed outage, with the record `waiting` in the log. The
 * outage starts with the live connection cut: in the field the pump finds a dead connection by its publish
 * timeout or the keepalive, which is not what is measured here; every connect after that goes into the
 * black hole.
 */
async function enterPhase(rig: Rig, phase: AzurePhase, waiting: string): Promise<void> {
  const status = () => rig.service.status();
  await until('the link up before the outage', () => status().link === 'up', PHASE_SET_UP_TIMEOUT_MS, status);
  await setOperstate(rig.sysDir, false);
  rig.proxy.blackhole();
  rig.proxy.cut();
  await until('the outage noticed', () => status().link !== 'up', PHASE_SET_UP_TIMEOUT_MS, status);
  await (await rig.log.lane(UPSTREAM_LANE_NAME)).append({ body: Buffer.from(waiting) });
  if (phase === 'connecting') {
    const stuck = () => status().link === 'connecting' && rig.proxy.connectionCount > 0;
    await until('a connect into the black hole', stuck, PHASE_SET_UP_TIMEOUT_MS, status);
    // Not a synchronisation: the scenario is a link that returns this far into an attempt.
    await sleep(CONNECTING_HOLD_MS);
    if (status().link !== 'connecting') {
      throw new Error(`the connect attempt ended within ${CONNECTING_HOLD_MS} ms: ${JSON.stringify(status())}`);
    }
  } else {
    await until('a connect into the black hole', () => status().link === 'connecting', PHASE_SET_UP_TIMEOUT_MS, status);
    const sleeping = () => status().link === 'backoff' && (status().retryInMs ?? 0) >= BACKOFF_SLEEP_LEFT_MS_MIN;
    await until('a backoff sleep after it', sleeping, PHASE_SET_UP_TIMEOUT_MS, status);
  }
}

/**
 * `runs` link-ups per phase: a record waits in the log, the pump is put in the phase, then the link returns
 * (the proxy passes new connections, those made during the outage stay dead) and the interface comes up
 * (the wake); the clock runs until the emulator has the record.
 */
export async function azureLinkUp(runs: number): Promise<Record<string, unknown>> {
  const dir = await freshDir('linkup-azure');
  const rig = await startRig(dir);
  const times: Record<AzurePhase, number[]> = { connecting: [], backoff: [] };
  let timeouts = 0;
  try {
    for (let run = 1; run <= runs * PHASES.length; run += 1) {
      const phase = PHASES[(run - 1) % PHASES.length]!;
      const marker = `azure-${run}`;
      await (await rig.log.lane(UPSTREAM_LANE_NAME)).append({ body: Buffer.from(marker) });
      // One record through before each outage: the connection really carries messages, not only CONNACKs.
      await until('a record through before the outage', () => rig.bodies.has(marker), PHASE_SET_UP_TIMEOUT_MS);
      const waiting = `${marker}-waiting`;
      await enterPhase(rig, phase, waiting);
      // The attempts made into the black hole stay dead, as after a redial: only the wake gets a new one.
      // Nothing is awaited between the phase check and here, so no attempt can start in between.
      rig.proxy.strand();
      rig.proxy.pass();
      const restored = performance.now();
      await setOperstate(rig.sysDir, true);
      try {
        const status = () => rig.service.status();
        await until('the first backlog message', () => rig.bodies.has(waiting), LINK_UP_TIMEOUT_MS, status);
        times[phase].push(performance.now() - restored);
      } catch (err) {
        timeouts += 1;
        times[phase].push(LINK_UP_TIMEOUT_MS);
        console.error(`uplink azure link-up run ${run} (${phase}): ${(err as Error).message}`);
        await until('the late record', () => rig.bodies.has(waiting), LINK_UP_TIMEOUT_MS).catch(() => undefined);
      }
    }
  } finally {
    await stopRig(rig);
    await removeDir(dir);
  }
  const figures = (phase: AzurePhase, ms = times[phase]) => ({
    [`${phase}Ms`]: median(ms),
    [`${phase}MinMs`]: Math.min(...ms),
    [`${phase}MaxMs`]: Math.max(...ms),
  });
  return { ...figures('connecting'), ...figures('backoff'), runsPerPhase: runs, timeouts };
}
