import { systemClock, type Clock } from '../clock.js';
import { UPSTREAM_LANE } from '../store/names.js';
import { azureHubHost, type AzureUplinkConfig, type MqttUplinkConfig, type UplinkConfig } from './config.js';
import { DEAD_LETTER_LANE_NAME } from './dead-letter.js';
import type { EdgeHubCredentials, EdgeUplink } from './edge/index.js';
import { watchLink, type LinkWatch } from './link-watch.js';
import type { EdgeHubModule, ProvisioningStatus } from './provisioning/index.js';
import { Pump, type PumpLaneConfig, type ResyncHook } from './pump.js';
import { backlogOf, disabledService } from './service-disabled.js';
import { startSettings, type UplinkSettings } from './service-settings.js';
import type { UplinkService, UplinkServiceOptions, UplinkStatus } from './service-types.js';
import { startSimUplink } from './sim-uplink.js';
import { loadTransport } from './transport-loader.js';
import type { UplinkTransport } from './types.js';
import { loadStartFiles, type UplinkStartFiles } from './start-files.js';

export type { UplinkService, UplinkServiceOptions, UplinkStatus } from './service-types.js';
export { loadStartFiles, type UplinkStartFiles } from './start-files.js';

/** The lane everything bound for the cloud goes through (firmware/runtime.ts opens it under the same name). */
export const UPSTREAM_LANE_NAME = UPSTREAM_LANE;

/**
 * The IoT Hub host of an azure uplink's connection string (from `files`, this start's read of
 * connectionStringFile): children's standard connection strings name that hub in their SAS audience.
 */
export async function uplinkHubHosts(
  config: UplinkConfig,
  files: UplinkStartFiles,
  dataDir: string,
): Promise<string[]> {
  if (config.protocol !== 'azure') return [];
  if (config.provisioning !== undefined) {
    const { provisionedHubHosts } = await import('./provisioning/index.js');
    return provisionedHubHosts({ ...config, provisioning: config.provisioning }, dataDir);
  }
  const host = files.transport?.protocol === 'azure' ? azureHubHost(files.transport.connectionString) : undefined;
  return host === undefined ? [] : [host];
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

/** The parts of a running uplink that its handle (serviceOf) answers from. */
interface Running {
  config: MqttUplinkConfig | AzureUplinkConfig;
  pump: Pump;
  transport: UplinkTransport;
  provisioning: ProvisioningHandle | undefined;
  edge: EdgeUplink | null;
  settings: UplinkSettings;
  watch: LinkWatch | null;
  resyncHooks: ResyncHook[];
  edgeCredentials: EdgeHubCredentials | undefined;
}

/**
 * Starts the uplink: loads the certificate files (unless this start read them already: `opts.files`) and the
 * saved cloud settings (so they hold before the first connect), then runs the pump over the upstream lane
 * (and any priority lanes) with the settings hook first on every connect, and wakes it whenever a watched
 * interface or the modem hook reports link-up.
 */
export async function startUplink(opts: UplinkServiceOptions): Promise<UplinkService> {
  const { config, log } = opts;
  if (config.protocol === 'none') return disabledService(log);
  if (config.protocol === 'sim') return startSimUplink(opts, config, startUplink);
  const clock = opts.clock ?? systemClock;
  const onError = opts.onError ?? (() => {});
  const files = opts.files ?? (await loadStartFiles(config, opts.gatewayId));
  let pump: Pump | null = null;
  const wake = () => pump?.wake('provisioned by DPS');
  const { transport, provisioning } = await uplinkTransport(opts, config, files, wake);
  const lanes: PumpLaneConfig[] = [];
  for (const { lane, weight } of config.priorityLanes) lanes.push({ lane: await log.lane(lane), weight });
  lanes.push({ lane: await log.lane(UPSTREAM_LANE_NAME), weight: 1 });
  const edgeCredentials = await edgeHubCredentials(opts, config, files, provisioning?.edgeHub ?? null);
  const edge = await startEdgeUplink(opts, config, files, edgeCredentials, clock, onError);
  const laneNames = [...lanes.map(({ lane }) => lane.name), ...(edge === null ? [] : [edge.heldLaneName])];
  // The hook list is read at every connect, so hooks added later join from the next connect on.
  const resyncHooks: ResyncHook[] = [];
  const started = new Pump({
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
    bytesPerSecMax: config.bytesPerSecMax,
    backoff: config.backoff,
    resyncHooks,
    ...(edge === null ? {} : { createSession: edge.uplink.createSession }),
    deadLetterLane: await log.lane(DEAD_LETTER_LANE_NAME),
    backlogStats: () => backlogOf(log, laneNames),
    onError,
  });
  pump = started;
  const { dataDir } = opts;
  const bytesPerSecMax = config.bytesPerSecMax;
  const settings = await startSettings({ dataDir, log, bytesPerSecMax, transport, pump: started, clock, onError });
  resyncHooks.push(settings.hook, ...(opts.resyncHooks ?? []));
  const watch = startLinkWatch(opts, config, started);
  started.start();
  const running = { config, pump: started, transport, provisioning, settings, watch, resyncHooks };
  return serviceOf({ ...running, edge: edge?.uplink ?? null, edgeCredentials });
}

/** Watches the interfaces and the modem flag board.json names, waking the pump on link-up; null for none. */
function startLinkWatch(
  opts: UplinkServiceOptions,
  config: MqttUplinkConfig | AzureUplinkConfig,
  pump: Pump,
): LinkWatch | null {
  if (config.interfaces.length === 0 && config.modemFlagPath === undefined) return null;
  return watchLink({
    interfaces: config.interfaces,
    modemFlagPath: config.modemFlagPath,
    sysClassNetDir: opts.sysClassNetDir,
    onUp: (why) => pump.wake(why),
  });
}

/** Edge mode's upstream connections (one per child identity); null in device mode and for mqtt. */
async function startEdgeUplink(
  opts: UplinkServiceOptions,
  config: MqttUplinkConfig | AzureUplinkConfig,
  files: UplinkStartFiles,
  credentials: EdgeHubCredentials | undefined,
  clock: Clock,
  onError: (err: Error) => void,
): Promise<{ uplink: EdgeUplink; heldLaneName: string } | null> {
  if (config.protocol !== 'azure' || credentials === undefined) return null;
  // Imported only in edge mode (as the transports and DPS are): a device-mode or mqtt gateway loads none of it.
  const { startEdge } = await import('./edge/service.js');
  return startEdge({
    config,
    credentials,
    ca: edgeCa(config, files),
    log: opts.log,
    clock,
    onError,
    gatewayId: opts.gatewayId,
    gatewayDevices: opts.gatewayDevices ?? new Set(),
  });
}

/**
 * The CA the children's upstream connections trust: the gateway's own (this start's read of uplink.caFile;
 * with DPS, the provisioning files as read).
 */
function edgeCa(config: AzureUplinkConfig, files: UplinkStartFiles): string | undefined {
  if (config.provisioning !== undefined) return files.provisioning?.ca;
  const ca = files.transport?.ca;
  return ca === undefined ? undefined : String(ca);
}

/**
 * Edge mode's `$edgeHub` credentials: board.json's connection string file (this start's read), or (with DPS)
 * a live view of the module the gateway sets up itself; undefined in device mode.
 */
async function edgeHubCredentials(
  opts: UplinkServiceOptions,
  config: MqttUplinkConfig | AzureUplinkConfig,
  files: UplinkStartFiles,
  module: EdgeHubModule | null,
): Promise<EdgeHubCredentials | undefined> {
  if (config.protocol !== 'azure' || config.azure.mode !== 'edge') return undefined;
  if (module !== null) {
    // Imported only in edge mode, as the rest of edge/ is.
    const { liveEdgeHubCredentials } = await import('./edge/token.js');
    return liveEdgeHubCredentials(() => module.credentials(), opts.gatewayId);
  }
  const edgeHub = files.edgeHub;
  return edgeHub && { hostName: edgeHub.hostName, gatewayId: edgeHub.deviceId, key: edgeHub.sharedAccessKey };
}

/** The handle of a running uplink. */
function serviceOf(r: Running): UplinkService {
  const { config, pump, edge, edgeCredentials } = r;
  const provisioning = r.provisioning;
  return {
    protocol: config.protocol,
    status: () => ({
      ...pump.status(),
      protocol: config.protocol,
      interfaces: r.watch?.states() ?? {},
      settings: r.settings.manager.status(),
      ...(provisioning === undefined ? {} : { provisioning: provisioningStatus(provisioning) }),
      ...(edge === null ? {} : { edge: edge.status() }),
    }),
    ...(edge === null ? {} : { identityTwins: edge.twins }),
    ...(provisioning === undefined ? {} : { hubHosts: () => provisioning.hubHosts() }),
    ...(provisioning?.edgeHub ? { edgeHubRefused: () => provisioning.edgeHub?.refusedByHub() } : {}),
    ...(edgeCredentials === undefined
      ? {}
      : { edgeHubCredentials: () => (edgeCredentials.key === '' ? null : { ...edgeCredentials }) }),
    wake: (reason) => pump.wake(reason),
    addResyncHook: (hook) => void r.resyncHooks.push(hook),
    ...(edge === null ? {} : { identitiesReturned: (ids: string[]) => edge.identitiesReturned(ids) }),
    attachLocalChildren: (local) => edge?.attachLocal(local),
    bandwidth: pump.bandwidth,
    async stop(budgetMs = UPLINK_STOP_BUDGET_MS_DEFAULT) {
      r.watch?.stop();
      // The pump abandons what it cannot finish within the budget; the race is the backstop for a transport
      // whose teardown itself hangs.
      await withinBudget(pump.stop(budgetMs), budgetMs, () => r.transport.destroy());
      await r.provisioning?.stop();
      await r.provisioning?.edgeHub?.stop();
      await edge?.close();
      await r.settings.stop();
    },
  };
}

/**
 * The transport board.json asks for; with DPS (azure `provisioning`) the provisioned one, whose provisioner
 * calls `wake` when an assignment comes in. The SDKs are loaded only for the protocol in use.
 */
async function uplinkTransport(
  opts: UplinkServiceOptions,
  config: MqttUplinkConfig | AzureUplinkConfig,
  files: UplinkStartFiles,
  wake: () => void,
): Promise<{ transport: UplinkTransport; provisioning?: ProvisioningHandle }> {
  if (config.protocol === 'azure' && config.provisioning !== undefined) {
    const { startProvisionedUplink } = await import('./provisioning/index.js');
    const { edgeHubBackoff, ...overrides } = opts.provisioningOverrides ?? {};
    const edgeMode = config.azure.mode === 'edge';
    const { transport, provisioner, edgeHub } = await startProvisionedUplink({
      config: { ...config, provisioning: config.provisioning },
      ...(files.provisioning === undefined ? {} : { loaded: files.provisioning }),
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
  if (files.transport === null) throw new Error('the uplink files were not read');
  return { transport: await loadTransport(files.transport) };
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
