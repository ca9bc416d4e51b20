import { systemClock, type Clock } from './clock.js';
import type { LoadedBoard } from './config/types.js';
import {
  createBusProvider,
  startDevices,
  type DeviceManager,
  type DeviceStatus,
  type DriverLog,
  type MethodResult,
  type ReportedListener,
} from '../drivers/index.js';
import { RingLog } from './store/log.js';
import type { LogStats } from './store/types.js';
import { startHub, type HubService } from './hub/index.js';
import type { SideChannelBroker } from './side-channel.js';
import type { DeviceScopeSource } from './auth/scope-api.js';
import { parseUplinkConfig, type UplinkConfig } from './uplink/config.js';
import type { ResyncHook } from './uplink/pump-options.js';
import {
  loadStartFiles,
  startUplink,
  uplinkHubHosts,
  type UplinkService,
  type UplinkServiceOptions,
  type UplinkStartFiles,
  type UplinkStatus,
} from './uplink/service.js';
import { registerSecret } from './log/redact.js';
import { UPSTREAM_LANE } from './store/names.js';
import { startUpdates, type RunningRelease, type UpdateService } from './ota/cloud-updates.js';
import type { UpdateStatus } from './ota/state.js';
import { OTA_DEFAULTS } from './config/ota.js';
import { gatewayDevicesOf, marksAsGateway, warnUnusedCloudIdentity } from './gateway-devices.js';

/**
 * Of main.ts's 15 s stop, what the uplink may spend on in-flight PUBACKs and its goodbye, ms. What it
 * abandons was not acked and goes again after the restart; the rest of the stop takes well under a second.
 */
const UPLINK_STOP_BUDGET_MS = 5_000;

export interface RuntimeStatus {
  variant: string;
  gatewayId: string;
  link: UplinkStatus['link'];
  uplink: UplinkStatus | null;
  store: LogStats;
  hub: ReturnType<HubService['status']> | null;
  devices: DeviceStatus[];
  /** Updates from the cloud; null when not run from a release (no version to update from). */
  update: UpdateStatus | null;
}

export interface RuntimeOptions {
  clock?: Clock;
  log?: DriverLog;
  /** Every error the runtime recovers from, by source (`uplink`, `hub`), for the status socket and the journal. */
  onError?: (source: string, err: Error) => void;
  /** Overrides board.json's storage.dataDir (tests, OUTPOST_DATA_DIR). */
  dataDir?: string;
  /** Overrides the hub's plain-TCP port (0 = any free port: tests, a second gateway on one machine). */
  hubPort?: number;
  /** The running release (its release.json); without it the gateway takes no updates from the cloud. */
  release?: RunningRelease;
  /** An update switched the release slot: stop cleanly so that systemd starts the new release. */
  requestRestart?: (reason: string) => void;
  /** DPS and `$edgeHub` setup backoffs board.json does not expose (tests). */
  provisioningOverrides?: UplinkServiceOptions['provisioningOverrides'];
}

/** Wiring and lifecycle of one gateway process: store first, then producers; stopped in reverse order. */
export class Runtime {
  private ringLog: RingLog | null = null;
  private devices: DeviceManager | null = null;
  private uplink: UplinkService | null = null;
  private hub: HubService | null = null;
  private updates: UpdateService | null = null;

  constructor(
    readonly board: LoadedBoard,
    private readonly opts: RuntimeOptions = {},
  ) {}

  get dataDir(): string {
    return this.opts.dataDir ?? this.board.storage.dataDir;
  }

  async start(): Promise<void> {
    const clock = this.opts.clock ?? systemClock;
    this.ringLog = await openLog(this.board, this.dataDir, clock);
    const uplinkConfig = parseUplinkConfig(this.board.uplink, this.board.file);
    registerUplinkSecrets(uplinkConfig);
    warnUnusedCloudIdentity(this.board, uplinkConfig);
    // The hub's resync hooks (identities, twins, methods) must all exist before the uplink's first connect,
    // or that whole connection runs without them: the hub starts first and hands its hooks to the uplink.
    const hooks: ResyncHook[] = [];
    // Each of the uplink's files is read once, here, for the hub and the uplink alike (uplink-files.ts).
    const gatewayId = this.board.identity.gatewayId;
    const files = await loadStartFiles(uplinkConfig, gatewayId);
    const cloudHostsAtStart = await uplinkHubHosts(uplinkConfig, files, this.dataDir);
    this.hub = await startHub({
      config: { hub: this.hubSection(), routes: this.board.routes },
      configFile: this.board.file,
      gatewayId: this.board.identity.gatewayId,
      log: this.ringLog,
      dataDir: this.dataDir,
      clock,
      uplink: {
        addResyncHook: (hook) => void hooks.push(hook),
        isLinkUp: () => this.isLinkUp(),
        identitiesReturned: (ids) => this.uplink?.identitiesReturned?.(ids),
      },
      scopeBroker: scopeBrokerFor(uplinkConfig, files),
      deviceScope: await deviceScopeFor(uplinkConfig, files, gatewayId, () => this.uplink),
      // Read at every CONNECT: a provisioned gateway's hub is known only after its first registration, and
      // changes when it is re-provisioned; the cache's (or the connection string's) until the uplink runs.
      cloudHostNames: () => this.uplink?.hubHosts?.() ?? cloudHostsAtStart,
      onError: (err) => {
        this.reportError('hub', err);
        // The device-scope API refused the $edgeHub token: a provisioned gateway checks its module again.
        if (err.name === 'ScopeApiError' && (err as { status?: number }).status === 401)
          this.uplink?.edgeHubRefused?.();
      },
    });
    this.updates = await this.startUpdates(uplinkConfig, files);
    if (this.updates !== null) hooks.push(this.updates.hook);
    this.uplink = await startUplink({
      config: uplinkConfig,
      gatewayId: this.board.identity.gatewayId,
      gatewayDevices: gatewayDevicesOf(this.board),
      log: this.ringLog,
      dataDir: this.dataDir,
      files,
      clock,
      resyncHooks: hooks,
      onError: (err) => this.reportError('uplink', err),
      onEdgeHubReady: () => void this.hub?.refreshIdentities().catch(() => {}),
      ...(this.opts.provisioningOverrides === undefined
        ? {}
        : { provisioningOverrides: this.opts.provisioningOverrides }),
    });
    if (this.uplink.identityTwins !== undefined) this.hub.attachIdentityTwins(this.uplink.identityTwins);
    this.uplink.attachLocalChildren?.(this.hub.children);
    const router = this.hub.router;
    // The gateway's own devices go through the same router as children: routes apply to them too.
    const asGateway = marksAsGateway(this.board);
    this.devices = await startDevices(this.board, (msg) => submitReading(router, msg, asGateway(msg.deviceId)), {
      buses: createBusProvider(this.board, { clock }),
      clock,
      log: this.opts.log,
    });
  }

  private async startUpdates(uplinkConfig: UplinkConfig, files: UplinkStartFiles): Promise<UpdateService | null> {
    const { release, requestRestart } = this.opts;
    if (release === undefined) return null;
    return startUpdates({
      dataDir: this.dataDir,
      gatewayId: this.board.identity.gatewayId,
      release,
      log: this.store,
      ota: this.board.ota ?? OTA_DEFAULTS,
      bytesPerSecMax: () => this.uplink?.status().bytesPerSecMax ?? 0,
      // The uplink starts after the updates (their hook must exist first); a download waits for its connect.
      bandwidth: { take: (bytes) => this.uplink?.bandwidth.take(bytes) ?? 0 },
      broker: scopeBrokerFor(uplinkConfig, files),
      keysDir: process.env.OUTPOST_OTA_KEYS_DIR,
      clock: this.opts.clock,
      restart: (reason) => requestRestart?.(reason),
      onError: (err) => this.reportError('ota', err),
    });
  }

  /** Connected, or running the resync hooks on a fresh connection. */
  private isLinkUp(): boolean {
    const link = this.uplink?.status().link;
    return link === 'up' || link === 'resyncing';
  }

  private reportError(source: string, err: Error): void {
    if (this.opts.onError) this.opts.onError(source, err);
    else this.opts.log?.warn({ err: err.message }, source);
  }

  private hubSection(): unknown {
    if (this.opts.hubPort === undefined) return this.board.hub;
    const hub = (this.board.hub ?? {}) as Record<string, unknown>;
    const tcp = (hub.tcp ?? {}) as Record<string, unknown>;
    return { ...hub, tcp: { ...tcp, port: this.opts.hubPort } };
  }

  get store(): RingLog {
    if (!this.ringLog) throw new Error('runtime not started');
    return this.ringLog;
  }

  status(): RuntimeStatus {
    const uplink = this.uplink?.status() ?? null;
    const store = this.store.stats();
    const backlogRecords = store.lanes.find((l) => l.lane === UPSTREAM_LANE)?.pendingRecords ?? 0;
    this.devices?.setLinkState({ online: uplink?.link === 'up', backlogRecords });
    return {
      variant: this.board.variant,
      gatewayId: this.board.identity.gatewayId,
      link: uplink?.link ?? 'disabled',
      uplink,
      store,
      hub: this.hub?.status() ?? null,
      devices: this.devices?.status() ?? [],
      update: this.updates?.status() ?? null,
    };
  }

  /** The link is back (SIGUSR2 from a modem hook): connect now instead of sleeping out the backoff. */
  wake(reason: string): void {
    this.uplink?.wake(reason);
  }

  /** A direct method on one of the gateway's own devices (the technician's page switching a relay). */
  invokeDeviceMethod(deviceId: string, name: string, payload: unknown): Promise<MethodResult> {
    if (!this.devices) return Promise.resolve({ status: 503, payload: { error: 'the gateway is not running' } });
    return this.devices.invokeMethod(deviceId, name, payload);
  }

  /** Reported-property changes of the gateway's own devices (relay state, faults); returns an unsubscribe. */
  onDeviceReported(listener: ReportedListener): () => void {
    return this.devices?.onReported(listener) ?? (() => {});
  }

  /**
   * Stops within main.ts's budget on any link, with intake (children, devices) open as long as possible:
   * the uplink gets UPLINK_STOP_BUDGET_MS for in-flight PUBACKs, then twins are saved and the log is closed
   * (flushed, checkpointed) — from then on a child's publish is refused, never PUBACKed — and only then the
   * hub and the devices, which stop at once.
   */
  async stop(): Promise<void> {
    const { devices, hub, uplink, ringLog, updates } = this;
    this.updates = null;
    this.devices = null;
    this.hub = null;
    this.uplink = null;
    this.ringLog = null;
    // A download in progress saves its synced length and resumes after the restart.
    await updates?.stop();
    await uplink?.stop(UPLINK_STOP_BUDGET_MS);
    await hub?.saveTwins();
    await ringLog?.close();
    await hub?.stop();
    await devices?.close();
  }
}

async function openLog(board: LoadedBoard, dir: string, clock: Clock): Promise<RingLog> {
  const { storage } = board;
  const log = await RingLog.open({
    dir,
    segmentBytes: storage.segmentBytes,
    recordBytesMax: storage.recordBytesMax,
    quotaBytes: storage.quotaBytes,
    quotaPolicy: storage.quotaPolicy,
    ttlSecs: storage.ttlSecs,
    syncMode: storage.syncMode,
    syncIntervalMs: storage.syncIntervalMs,
    checkpointIntervalMs: storage.checkpointIntervalMs,
    clock,
  });
  await log.lane(UPSTREAM_LANE);
  return log;
}

/**
 * A driver reading enters the router like a child's telemetry; content type and encoding travel as metadata,
 * and the mark of the gateway's own device (its records go up as the gateway, also in edge mode) unless the
 * driver has an IoT Hub identity of its own (cloudIdentity "own").
 */
async function submitReading(
  router: HubService['router'],
  msg: { deviceId: string; body: Buffer; properties: Record<string, string> },
  gatewayDevice: boolean,
): Promise<void> {
  const { 'content-type': contentType, 'content-encoding': contentEncoding, ...rest } = msg.properties;
  await router.submit(msg.deviceId, msg.body, rest, { contentType, contentEncoding, gatewayDevice });
}

/**
 * The uplink's own credentials are known here: registered with the log scrubber, they are removed from any
 * log line, even a bare key inside an SDK's error message that no pattern would recognise.
 */
function registerUplinkSecrets(config: UplinkConfig): void {
  if (config.protocol === 'mqtt') registerSecret(config.password);
  if (config.protocol === 'azure' && config.connectionString) {
    registerSecret(config.connectionString);
    registerSecret(/SharedAccessKey=([^;]+)/i.exec(config.connectionString)?.[1]);
  }
}

/**
 * azure edge mode: the child list comes from IoT Hub's device-scope API, as the $edgeHub module; with DPS the
 * module is the uplink's own (a live view: none before it is set up, the new hub's after a re-provisioning).
 */
async function deviceScopeFor(
  config: UplinkConfig,
  files: UplinkStartFiles,
  gatewayId: string,
  uplink: () => UplinkService | null,
): Promise<DeviceScopeSource | undefined> {
  if (config.protocol !== 'azure') return undefined;
  if (config.provisioning !== undefined && config.azure.mode === 'edge') {
    const ca = files.provisioning?.ca;
    const live = () => uplink()?.edgeHubCredentials?.() ?? null;
    return {
      get hostName() {
        return live()?.hostName ?? '';
      },
      gatewayId,
      get edgeHubKey() {
        return live()?.key ?? '';
      },
      ca,
    };
  }
  const edgeHub = files.edgeHub;
  if (edgeHub === undefined) return undefined;
  registerSecret(edgeHub.sharedAccessKey);
  const ca = files.transport?.ca === undefined ? undefined : String(files.transport.ca);
  return { hostName: edgeHub.hostName, gatewayId, edgeHubKey: edgeHub.sharedAccessKey, ca };
}

/** With an mqtt uplink the identity scope document is read from the same broker, with the same credentials. */
function scopeBrokerFor(config: UplinkConfig, files: UplinkStartFiles): SideChannelBroker | undefined {
  if (config.protocol !== 'mqtt' || files.transport === null) return undefined;
  const { ca, cert, key } = files.transport;
  return {
    url: config.url,
    ca,
    cert,
    key,
    username: config.username,
    password: config.password,
  };
}
