import { systemClock, type Clock } from '../clock.js';
import type { RingLog } from '../store/log.js';
import type { BackoffOptions } from './backoff.js';
import { azureHubHost, loadEdgeHub, loadUplinkFiles, type SimUplinkConfig, type UplinkConfig } from './config.js';
import type { EdgeHubCredentials, EdgeStatus, IdentityTwins, LocalChildren } from './edge/index.js';
import { DEAD_LETTER_LANE_NAME } from './dead-letter.js';
import type { SimCloudStatus } from '../sim/cloud.js';
import { SIM_TELEMETRY_TOPIC_TEMPLATE } from '../side-channel.js';
import { watchLink, type LinkWatch } from './link-watch.js';
import {
  Pump,
  type LinkState,
  type PumpLaneConfig,
  type PumpOptions,
  type PumpStatus,
  type ResyncHook,
} from './pump.js';
import { CloudSettingsManager, type SettingsStatus } from './settings.js';
import { loadTransport } from './transport-loader.js';
import type { UplinkTransport } from './types.js';
import type { AzureUplinkConfig, MqttUplinkConfig } from './config.js';
import type {
  EdgeHubModule,
  EdgeHubModuleStatus,
  ProvisionedUplinkOptions,
  ProvisioningStatus,
} from './provisioning/index.js';
import { UPSTREAM_LANE } from '../store/names.js';

/** The lane everything bound for the cloud goes through (firmware/runtime.ts opens it under the same name). */

/**
 * The IoT Hub host of an azure uplink's connection string (read from connectionStringFile when it names one):
 * children's standard connection strings name that hub in their SAS audience. The hub starts before the
 * uplink, so it is read here once for it.
 */
export async function uplinkHubHosts(config: UplinkConfig, gatewayId: string, dataDir: string): Promise<string[]> {
  if (config.protocol !== 'azure') return [];
  if (config.provisioning !== undefined) {
    const { provisionedHubHosts } = await import('./provisioning/index.js');
    return provisionedHubHosts({ ...config, provisioning: config.provisioning }, dataDir);
  }
  const loaded = await loadUplinkFiles(config, gatewayId);
  const host = loaded.protocol === 'azure' ? azureHubHost(loaded.connectionString) : undefined;
  return host === undefined ? [] : [host];
}

export const UPSTREAM_LANE_NAME = UPSTREAM_LANE;

export interface UplinkServiceOptions {
  config: UplinkConfig;
  /** board.json's identity.gatewayId: the first part of every stable message id. */
  gatewayId: string;
  log: RingLog;
  /** Where cloud-pushed settings are saved: the ring log's data dir. */
  dataDir: string;
  clock?: Clock;
  /** Every error the uplink recovers from (link failures, refused settings), for the journal. */
  onError?: (err: Error) => void;
  /** Where interface state is read. Default /sys/class/net; tests and the benchmark pass a temp dir. */
  sysClassNetDir?: string;
  /**
   * Run on every connect after the settings hook, in order (identities, then twins). Given here, not added
   * later, so that they exist before the first connect: a hook missing then misses that whole connection.
   */
  resyncHooks?: ResyncHook[];
  /** DPS registration backoff and timeout board.json does not expose, for tests. */
  provisioningOverrides?: Pick<ProvisionedUplinkOptions, 'backoff' | 'timeoutMs'> & {
    /** The `$edgeHub` setup's retry backoff (edge-hub.ts). */
    edgeHubBackoff?: BackoffOptions;
  };
  /** Edge mode with DPS: the `$edgeHub` module is set up (again); the hub may read the device scope now. */
  onEdgeHubReady?: () => void;
  /** Pump limits board.json does not expose (timeouts, batches), for tests and the benchmark. */
  pumpOverrides?: Partial<
    Omit<PumpOptions, 'gatewayId' | 'transport' | 'lanes' | 'clock' | 'resyncHooks' | 'backlogStats' | 'onError'>
  >;
}

export interface UplinkStatus extends Omit<PumpStatus, 'link' | 'protocol'> {
  /** `disabled` when board.json says `"protocol": "none"`. */
  link: LinkState | 'disabled';
  protocol: UplinkConfig['protocol'];
  /** Last seen state of each watched interface. */
  interfaces: Record<string, 'up' | 'down'>;
  /** Cloud-pushed settings in force; null when the uplink is disabled. */
  settings: SettingsStatus | null;
  /** The sim board's embedded cloud: its simulated link and what its consumer received. */
  simCloud?: SimCloudStatus;
  /** azure with DPS: the registration and the identity in use, and in edge mode its `$edgeHub` module. */
  provisioning?: ProvisioningStatus & { edgeHub?: EdgeHubModuleStatus };
  /** Edge mode: the children's upstream connections and the parked identities. */
  edge?: EdgeStatus;
}

export interface UplinkService {
  readonly protocol: UplinkConfig['protocol'];
  /** azure: the IoT Hub host of the gateway's connection string, which children's SAS tokens name too. */
  status(): UplinkStatus;
  /** Edge mode: the children's own twins on their upstream connections (absent in device mode). */
  readonly identityTwins?: IdentityTwins;
  /**
   * The uplink's `maxBytesPerSec` token bucket (the pump's): another sender on the same link takes its bytes
   * from it, so the two together stay under the one cap. `take` returns 0 or the ms to wait (nothing taken).
   */
  readonly bandwidth: { take(bytes: number): number };
  /** The link is back (SIGUSR2, a dialer callback): connect now instead of sleeping out the backoff. */
  wake(reason: string): void;
  /**
   * Adds a step to every (re)connect, run after the ones before it and before the drain (the settings hook
   * is always first; identities, then twins, come next). A hook added while connected runs from the next connect.
   */
  addResyncHook(hook: ResyncHook): void;
  /** The registry lists these identities again: edge mode retries the refused ones and re-sends their letters. */
  identitiesReturned?(identities: string[]): void;
  /**
   * azure with DPS: the IoT Hub assigned now (children's SAS tokens name it as audience); it changes when the
   * gateway is provisioned for the first time and when it is re-provisioned to another hub.
   */
  hubHosts?(): string[];
  /** Edge mode with DPS: IoT Hub refused the `$edgeHub` token (a 401): the module is checked and re-keyed. */
  edgeHubRefused?(): void;
  /** Edge mode: the `$edgeHub` credentials in use now (a provisioned gateway's change); null while there are none. */
  edgeHubCredentials?(): EdgeHubCredentials | null;
  /** Edge mode: the local hub's children, whom their upstream connections then follow (no-op otherwise). */
  attachLocalChildren?(local: LocalChildren): void;
  /** Lets in-flight publishes finish, saves settings, closes the connection; the pump's part within `budgetMs`. */
  stop(budgetMs?: number): Promise<void>;
}

/** Sums the store's view of the pump's lanes: bytes pending and the oldest record's age. */
function backlogOf(log: RingLog, lanes: string[]): { records: number; bytes: number; oldestAgeMs: number } {
  let records = 0;
  let bytes = 0;
  let oldestAgeMs = 0;
  for (const lane of log.stats().lanes) {
    if (!lanes.includes(lane.lane)) continue;
    records += lane.pendingRecords;
    bytes += lane.pendingBytes;
    oldestAgeMs = Math.max(oldestAgeMs, lane.oldestPendingAgeMs);
  }
  return { records, bytes, oldestAgeMs };
}

function disabledService(log: RingLog): UplinkService {
  return {
    protocol: 'none',
    status: () => ({
      link: 'disabled',
      protocol: 'none',
      lastError: null,
      lastWake: null,
      lastProbe: null,
      connectedSinceWallMs: null,
      connects: 0,
      backoffCeilingMs: 0,
      retryInMs: null,
      inflight: 0,
      windowMax: null,
      deadLetters: { total: 0, byReason: {}, last: null },
      throttled: { total: 0, byReason: {}, last: null },
      maxBytesPerSec: 0,
      backlog: backlogOf(log, [UPSTREAM_LANE_NAME]),
      drainRatePerSec: 0,
      etaSecs: null,
      interfaces: {},
      settings: null,
    }),
    wake: () => {},
    addResyncHook: () => {},
    bandwidth: { take: () => 0 },
    stop: async () => {},
  };
}

/**
 * Starts the uplink: loads the certificate files and the saved cloud settings (so they hold before the
 * first connect), then runs the pump over the upstream lane (and any priority lanes) with the settings
 * hook first on every connect, and wakes it whenever a watched interface or the modem hook reports link-up.
 */
export async function startUplink(opts: UplinkServiceOptions): Promise<UplinkService> {
  const { config, log } = opts;
  if (config.protocol === 'none') return disabledService(log);
  if (config.protocol === 'sim') return startSimUplink(opts, config);
  const clock = opts.clock ?? systemClock;
  const onError = opts.onError ?? (() => {});
  let pump: Pump | null = null;
  const { transport, provisioning } = await uplinkTransport(opts, config, () => pump?.wake('provisioned by DPS'));

  const lanes: PumpLaneConfig[] = [];
  for (const { lane, weight } of config.priorityLanes) lanes.push({ lane: await log.lane(lane), weight });
  lanes.push({ lane: await log.lane(UPSTREAM_LANE_NAME), weight: 1 });
  const edgeCredentials = await edgeHubCredentials(opts, config, provisioning?.edgeHub ?? null);
  const edge =
    edgeCredentials === undefined || config.protocol !== 'azure'
      ? null
      : // Imported only in edge mode (as the transports and DPS are): a device-mode or mqtt gateway loads none of it.
        await (
          await import('./edge/service.js')
        ).startEdge({
          config,
          credentials: edgeCredentials,
          ca: await edgeCa(config, opts.gatewayId),
          log,
          clock,
          onError,
          gatewayId: opts.gatewayId,
        });
  const laneNames = [...lanes.map(({ lane }) => lane.name), ...(edge === null ? [] : [edge.heldLaneName])];
  // The hook list is read at every connect, so hooks added later join from the next connect on.
  const resyncHooks: ResyncHook[] = [];
  pump = new Pump({
    // board.json's timeouts first: a test's overrides are finer than any board's.
    publishTimeoutMs: config.publishTimeoutMs,
    linkUpJitterMsMax: config.linkUpJitterMsMax,
    bootJitterMsMax: config.bootJitterMsMax,
    ...(config.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: config.connectTimeoutMs }),
    ...opts.pumpOverrides,
    gatewayId: opts.gatewayId,
    transport,
    lanes,
    clock,
    inflightMax: config.inflightMax,
    maxBytesPerSec: config.maxBytesPerSec,
    backoff: config.backoff,
    resyncHooks,
    ...(edge === null ? {} : { createSession: edge.uplink.createSession }),
    deadLetterLane: await log.lane(DEAD_LETTER_LANE_NAME),
    backlogStats: () => backlogOf(log, laneNames),
    onError,
  });

  const settings = new CloudSettingsManager({
    dataDir: opts.dataDir,
    // The log's settings at start are the board's (storage section); the cloud's override them.
    baseline: { ttlSecs: log.opts.ttlSecs, quotaBytes: log.opts.quotaBytes, maxBytesPerSec: config.maxBytesPerSec },
    target: { applyStore: (s) => log.applySettings(s), setMaxBytesPerSec: (n) => pump.setMaxBytesPerSec(n) },
    clock,
    onError,
  });
  await settings.load();
  const unsubscribes = listenForSettings(transport, settings);
  resyncHooks.push(settingsHook(transport, settings), ...(opts.resyncHooks ?? []));

  const watch: LinkWatch | null =
    config.interfaces.length > 0 || config.modemFlagPath !== undefined
      ? watchLink({
          interfaces: config.interfaces,
          modemFlagPath: config.modemFlagPath,
          sysClassNetDir: opts.sysClassNetDir,
          onUp: (why) => pump.wake(why),
        })
      : null;
  const running = pump;
  running.start();

  return {
    protocol: config.protocol,
    status: () => ({
      ...running.status(),
      protocol: config.protocol,
      interfaces: watch?.states() ?? {},
      settings: settings.status(),
      ...(provisioning === undefined ? {} : { provisioning: provisioningStatus(provisioning) }),
      ...(edge === null ? {} : { edge: edge.uplink.status() }),
    }),
    ...(edge === null ? {} : { identityTwins: edge.uplink.twins }),
    ...(provisioning === undefined ? {} : { hubHosts: () => provisioning.hubHosts() }),
    ...(provisioning?.edgeHub ? { edgeHubRefused: () => provisioning.edgeHub?.refusedByHub() } : {}),
    ...(edgeCredentials === undefined
      ? {}
      : { edgeHubCredentials: () => (edgeCredentials.key === '' ? null : { ...edgeCredentials }) }),
    wake: (reason) => running.wake(reason),
    addResyncHook: (hook) => void resyncHooks.push(hook),
    ...(edge === null ? {} : { identitiesReturned: (ids: string[]) => edge.uplink.identitiesReturned(ids) }),
    attachLocalChildren: (local) => edge?.uplink.attachLocal(local),
    bandwidth: running.bandwidth,
    async stop(budgetMs = UPLINK_STOP_BUDGET_MS_DEFAULT) {
      watch?.stop();
      // The pump abandons what it cannot finish within the budget; the race is the backstop for a transport
      // whose teardown itself hangs.
      await withinBudget(running.stop(budgetMs), budgetMs, () => transport.destroy());
      await provisioning?.stop();
      await provisioning?.edgeHub?.stop();
      await edge?.uplink.close();
      for (const unsubscribe of unsubscribes) unsubscribe();
      await settings.flush();
    },
  };
}

/** What the service keeps of a provisioner: its status, the hub assigned, its stop; edge mode's module. */
interface ProvisioningHandle {
  status(): ProvisioningStatus;
  hubHosts(): string[];
  stop(): Promise<void>;
  edgeHub: EdgeHubModule | null;
}

function provisioningStatus(handle: ProvisioningHandle): UplinkStatus['provisioning'] {
  return { ...handle.status(), ...(handle.edgeHub === null ? {} : { edgeHub: handle.edgeHub.status() }) };
}

/** The CA the children's upstream connections trust: the gateway's own (with DPS, uplink.caFile as read). */
async function edgeCa(config: AzureUplinkConfig, gatewayId: string): Promise<string | undefined> {
  if (config.provisioning !== undefined) {
    const { loadProvisioningFiles } = await import('./provisioning/files.js');
    return (await loadProvisioningFiles({ ...config, provisioning: config.provisioning })).ca;
  }
  const loaded = await loadUplinkFiles(config, gatewayId);
  return loaded.ca === undefined ? undefined : String(loaded.ca);
}

/**
 * Edge mode's `$edgeHub` credentials: board.json's connection string file, or (with DPS) a live view of the
 * module the gateway sets up itself; undefined in device mode.
 */
async function edgeHubCredentials(
  opts: UplinkServiceOptions,
  config: MqttUplinkConfig | AzureUplinkConfig,
  module: EdgeHubModule | null,
): Promise<EdgeHubCredentials | undefined> {
  if (config.protocol !== 'azure' || config.azure.mode !== 'edge') return undefined;
  if (module !== null) {
    // Imported only in edge mode, as the rest of edge/ is.
    const { liveEdgeHubCredentials } = await import('./edge/token.js');
    return liveEdgeHubCredentials(() => module.credentials(), opts.gatewayId);
  }
  const edgeHub = await loadEdgeHub(config, opts.gatewayId);
  return edgeHub && { hostName: edgeHub.hostName, gatewayId: edgeHub.deviceId, key: edgeHub.sharedAccessKey };
}

/**
 * The transport board.json asks for; with DPS (azure `provisioning`) the provisioned one, whose provisioner
 * calls `wake` when an assignment comes in. The SDKs are loaded only for the protocol in use.
 */
async function uplinkTransport(
  opts: UplinkServiceOptions,
  config: MqttUplinkConfig | AzureUplinkConfig,
  wake: () => void,
): Promise<{ transport: UplinkTransport; provisioning?: ProvisioningHandle }> {
  if (config.protocol === 'azure' && config.provisioning !== undefined) {
    const { startProvisionedUplink } = await import('./provisioning/index.js');
    const { edgeHubBackoff, ...overrides } = opts.provisioningOverrides ?? {};
    const edgeMode = config.azure.mode === 'edge';
    const { transport, provisioner, edgeHub } = await startProvisionedUplink({
      config: { ...config, provisioning: config.provisioning },
      gatewayId: opts.gatewayId,
      dataDir: opts.dataDir,
      clock: opts.clock,
      onError: opts.onError ?? (() => {}),
      onAssigned: wake,
      ...overrides,
      ...(edgeMode ? { edgeHub: { onReady: () => opts.onEdgeHubReady?.(), backoff: edgeHubBackoff } } : {}),
    });
    const hubHosts = () => {
      const identity = provisioner.identity();
      return identity === null ? [] : [identity.assignedHub];
    };
    return {
      transport,
      provisioning: { status: () => provisioner.status(), hubHosts, stop: () => provisioner.stop(), edgeHub },
    };
  }
  return { transport: await loadTransport(await loadUplinkFiles(config, opts.gatewayId)) };
}

/**
 * A stop's wait for in-flight PUBACKs and the goodbye, ms: on a black-holed link they never come, and the
 * pump alone would wait out publishTimeoutMs (20 s), past systemd's stop timeout. What is abandoned was not
 * acked, so it goes again after the restart (at-least-once).
 */
const UPLINK_STOP_BUDGET_MS_DEFAULT = 5_000;

/** Waits for `work` at most `budgetMs`; past that, `abandon` tears down whatever it waits on. */
async function withinBudget(work: Promise<void>, budgetMs: number, abandon: () => Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), budgetMs)));
  const outcome = await Promise.race([work.then(() => 'done' as const), late]);
  clearTimeout(timer);
  if (outcome === 'late') await abandon();
}

/**
 * The sim board's uplink: the real mqtt uplink, to an embedded broker behind a link that drops on a cycle
 * (firmware/sim). SIGUSR1 flips the link by hand; when it comes back the pump is woken as a modem hook would.
 */
async function startSimUplink(opts: UplinkServiceOptions, config: SimUplinkConfig): Promise<UplinkService> {
  const { linkUpSecs, linkDownSecs, protocol: _sim, ...common } = config;
  let service: UplinkService | null = null;
  // Imported only on the sim board: the embedded broker (aedes) is no part of a real gateway's memory.
  const { SimCloud } = await import('../sim/cloud.js');
  const cloud = await SimCloud.start({
    gatewayId: opts.gatewayId,
    linkUpSecs,
    linkDownSecs,
    onLinkUp: () => service?.wake('sim link up'),
  });
  const toggle = () => cloud.toggleLink();
  process.on('SIGUSR1', toggle);
  try {
    service = await startUplink({
      ...opts,
      config: {
        ...common,
        protocol: 'mqtt',
        url: cloud.url,
        username: undefined,
        password: undefined,
        topicTemplate: SIM_TELEMETRY_TOPIC_TEMPLATE,
        configTopic: undefined,
        protocolVersion: 4,
      },
    });
  } catch (err) {
    process.off('SIGUSR1', toggle);
    await cloud.stop();
    throw err;
  }
  const mqttService = service;
  return {
    protocol: 'sim',
    status: () => ({ ...mqttService.status(), protocol: 'sim', simCloud: cloud.status() }),
    wake: (reason) => mqttService.wake(reason),
    addResyncHook: (hook) => mqttService.addResyncHook(hook),
    bandwidth: mqttService.bandwidth,
    async stop(budgetMs) {
      process.off('SIGUSR1', toggle);
      await mqttService.stop(budgetMs);
      await cloud.stop();
    },
  };
}

/** Settings pushed while connected: desired-property patches (azure) or config topic messages (mqtt). */
function listenForSettings(transport: UplinkTransport, settings: CloudSettingsManager): Array<() => void> {
  const out: Array<() => void> = [];
  if (transport.twin !== undefined) out.push(transport.twin.onDesired((patch) => void settings.fromTwinPatch(patch)));
  const topic = transport.configTopic;
  if (topic !== undefined)
    out.push(topic.onMessage((payload) => void settings.fromConfigMessage(payload, `mqtt:${topic.topic}`)));
  return out;
}

/**
 * First on every connect. azure: a twin GET, since patches sent while offline were missed. mqtt: a
 * SUBSCRIBE, which makes the broker send the retained document; it is applied when it arrives (normally in
 * the same round trip as the SUBACK) rather than waited for, because a broker with no document sends nothing.
 */
function settingsHook(transport: UplinkTransport, settings: CloudSettingsManager): ResyncHook {
  return {
    name: 'settings',
    async run() {
      if (transport.twin !== undefined) settings.fromTwinDesired((await transport.twin.get()).desired);
      else if (transport.configTopic !== undefined) await transport.configTopic.subscribe();
    },
  };
}
