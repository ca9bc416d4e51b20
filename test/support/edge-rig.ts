import { setTimeout as sleep } from 'node:timers/promises';
import { systemClock } from '../../firmware/clock.js';
import { RingLog } from '../../firmware/store/log.js';
import type { Lane } from '../../firmware/store/lane.js';
import { createAzureTransport } from '../../firmware/uplink/azure.js';
import { DEAD_LETTER_LANE_NAME } from '../../firmware/uplink/dead-letter.js';
import { EdgeUplink, HELD_LANE_NAME, type EdgeUplinkOptions } from '../../firmware/uplink/edge/index.js';
import { createIdentityLink, type IdentityLink } from '../../firmware/uplink/edge/link.js';
import type { EdgeHubCredentials } from '../../firmware/uplink/edge/token.js';
import { parseEdgeHubConnectionString } from '../../firmware/uplink/azure-mode.js';
import { RECORD_KEY } from '../../firmware/uplink/message.js';
import { Pump } from '../../firmware/uplink/pump.js';
import { IotHubEmulator } from './iothub-emulator.js';
import { tempDir } from './tmp.js';

/** Edge mode on the real ring log and the real SDK against the IoT Hub emulator, for the edge tests. */

type Teardown = { teardown(fn: () => unknown): void };

export async function until(what: string, check: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

export interface EdgeRig {
  hub: IotHubEmulator;
  log: RingLog;
  upstream: Lane;
  dead: Lane;
  held: Lane;
  edge: EdgeUplink;
  pump: Pump;
  errors: string[];
  /** Appends one record per entry, from that device (the gateway's own when it is "gw"), numbered from 1. */
  append(devices: string[]): Promise<void>;
  start(): void;
  /**
   * The gateway restarted on the same ring log: the pump stopped and edge mode closed, then a new edge mode
   * (pool, holding lane's counts) and pump started from the lanes' acknowledged cursors.
   */
  restart(): Promise<void>;
}

type PoolKnobs =
  'connectionsMax' | 'idleSecs' | 'connectsPerSecMax' | 'backoff' | 'tokenTtlSecs' | 'clock' | 'readAheadRecordsMax';
export type RigOptions = Partial<Pick<EdgeUplinkOptions, PoolKnobs>> & {
  /** Children of the gateway "gw" in the emulator's registry; any other id is refused at CONNECT. */
  children: string[];
  /** The pump's overall window (default the pump's). */
  inflightMax?: number;
  /** A link per identity; default the on-behalf-of one edge mode makes. */
  createLink?: (identity: string, hub: IotHubEmulator, credentials: EdgeHubCredentials) => IdentityLink;
};

export async function edgeRig(t: Teardown, options: RigOptions): Promise<EdgeRig> {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const log = await RingLog.open({ dir: tempDir(t), ttlSecs: 0 });
  t.teardown(() => log.close());
  const [upstream, dead, held] = await Promise.all(
    ['upstream', DEAD_LETTER_LANE_NAME, HELD_LANE_NAME].map((n) => log.lane(n)),
  );
  const strings = hub.createEdgeDevice('gw');
  for (const id of options.children) {
    hub.createDevice(id);
    hub.addChild('gw', id);
  }
  const edgeHub = parseEdgeHubConnectionString(strings.edgeHub, 'gw', 'board.json', 'edgehub-cs');
  const credentials = { hostName: edgeHub.hostName, gatewayId: edgeHub.deviceId, key: edgeHub.sharedAccessKey };
  const errors: string[] = [];
  const lanes = { upstream: upstream!, dead: dead!, held: held! };
  const build = () => edgeAndPump(t, { hub, log, ...lanes, errors }, options, credentials, strings.device);
  const first = build();
  let n = 0;
  const rig: EdgeRig = {
    hub,
    log,
    ...lanes,
    edge: first.edge,
    pump: first.pump,
    errors,
    async append(devices) {
      // One batch: the drain sees the whole backlog at once, as after an outage.
      const inputs = devices.map((who) => ({
        body: Buffer.from(String((n += 1))),
        properties: { [RECORD_KEY.deviceId]: who },
      }));
      if (inputs.length > 0) await upstream!.appendBatch(inputs);
    },
    start() {
      const pump = rig.pump;
      pump.start();
      t.teardown(() => pump.stop());
    },
    async restart() {
      await rig.pump.stop();
      await rig.edge.close();
      Object.assign(rig, build());
      rig.start();
    },
  };
  return rig;
}

/** Edge mode and the pump on the rig's lanes: made at the start and again at each restart. */
function edgeAndPump(
  t: Teardown,
  rig: Pick<EdgeRig, 'hub' | 'log' | 'upstream' | 'dead' | 'held' | 'errors'>,
  options: RigOptions,
  credentials: EdgeHubCredentials,
  connectionString: string,
): Pick<EdgeRig, 'edge' | 'pump'> {
  const { hub, log } = rig;
  const { children: _children, createLink, inflightMax, ...pool } = options;
  const edge = new EdgeUplink({
    gatewayId: 'gw',
    credentials,
    clock: systemClock,
    ca: hub.ca.cert,
    heldLane: rig.held,
    deadLetterLane: rig.dead,
    storeNowMs: () => log.storeNowMs(),
    connectTimeoutMs: 5_000,
    publishTimeoutMs: 5_000,
    backoff: { baseMs: 20, maxMs: 50 },
    ...pool,
    reportError: (err) => void rig.errors.push(err.message),
    ...(createLink === undefined ? {} : { createLink: (identity: string) => createLink(identity, hub, credentials) }),
  });
  t.teardown(() => edge.close());
  const pump = new Pump({
    gatewayId: 'gw',
    transport: createAzureTransport({ connectionString, ca: hub.ca.cert }),
    lanes: [{ lane: rig.upstream }],
    createSession: edge.createSession,
    deadLetterLane: rig.dead,
    backoff: { baseMs: 50, maxMs: 200 },
    ...(inflightMax === undefined ? {} : { inflightMax }),
  });
  return { edge, pump };
}

/** The on-behalf-of link edge mode makes, to another host name (a fault proxy in front of the emulator). */
export function linkVia(
  identity: string,
  hub: IotHubEmulator,
  credentials: EdgeHubCredentials,
  hostName: string,
): IdentityLink {
  hub.allowHostName(hostName);
  return createIdentityLink({
    identity,
    credentials: { ...credentials, hostName },
    ca: hub.ca.cert,
    wallMs: () => Date.now(),
  });
}

/** Bodies (numbers) the emulator received from `deviceId`, in arrival order. */
export function bodiesOf(hub: IotHubEmulator, deviceId: string): number[] {
  return hub.telemetry.filter((r) => r.deviceId === deviceId).map((r) => Number(r.body.toString()));
}
