import mqtt from 'mqtt';
import type { Clock } from '../clock.js';
import { DESIRED_SETTLE_MS, type UplinkTransport } from '../uplink/types.js';
import type { IdentityCache, ScopeChange } from './cache.js';
import { parseScopeDocument } from './identity.js';
import { fetchDeviceScope, SCOPE_REQUEST_TIMEOUT_MS, type DeviceScopeSource } from './scope-api.js';
import { scopeDocumentFromApi } from './scope-convert.js';
import { ScopeFollower } from './scope-follow.js';
import { scopeTopic, sideChannelOptions, type SideChannelBroker } from '../side-channel.js';

/**
 * Keeps the identity cache in step with the cloud: at every uplink (re)connect (a resync hook), every
 * `identityRefreshSecs` while connected, and for an unknown device that tries to connect while the cache is
 * stale (backing off). Sources: IoT Hub's device-scope API (azure, edge mode: every page, as edgeHub reads
 * it), the gateway twin's desired `outpostScope` (azure, device mode; patches to it are read at once), or a
 * retained document on `outpost/<gatewayId>/scope` (mqtt; see `scopeTopic`), followed live while the uplink
 * is up (ScopeFollower), which keeps the cache fresh without any reads of its own.
 */

export const SCOPE_TWIN_PROPERTY = 'outpostScope';
/** How long a retained scope document may take to arrive after subscribing, ms. */
const RETAINED_WAIT_MS = 5_000;
/** A scope read that has not finished by then is abandoned (a twin GET on a dying link may never settle), ms. */
const REFRESH_TIMEOUT_MS = 15_000;
/** The same for the device-scope API, which may take several pages of SCOPE_REQUEST_TIMEOUT_MS each, ms. */
const DEVICE_SCOPE_REFRESH_TIMEOUT_MS = 6 * SCOPE_REQUEST_TIMEOUT_MS;
/**
 * After a failed device-scope read on a live link the next one comes after this, doubling up to the
 * refresh period: the uplink stays up and drains meanwhile, and the cache keeps serving, ms.
 */
const DEVICE_SCOPE_RETRY_MS_MIN = 1_000;
/**
 * An unknown device id makes a full scope read only if the last one is older than this, and at most once
 * per this period; each such read that does not find the id doubles it (random ids must not cost a metered
 * link a read every few seconds), one that does resets it, ms.
 */
const UNKNOWN_REFRESH_INTERVAL_MS_MIN = 5 * 60_000;
const UNKNOWN_REFRESH_INTERVAL_MS_MAX = 6 * 3_600_000;
/** Unknown ids remembered between full refreshes, ids; each gets at most one targeted refresh. */
const UNKNOWN_IDS_MAX = 1_000;

/** Reads the retained message on `topic`; null when the broker has none within `waitMs`. */
export async function fetchRetained(
  broker: SideChannelBroker,
  topic: string,
  waitMs = RETAINED_WAIT_MS,
): Promise<Buffer | null> {
  const client = await mqtt.connectAsync(
    broker.url,
    sideChannelOptions(broker, { reconnectPeriodMs: 0, connectTimeoutMs: waitMs }),
  );
  try {
    const arrived = new Promise<Buffer | null>((resolve) => {
      const timer = setTimeout(() => resolve(null), waitMs);
      client.on('message', (t, payload, packet) => {
        if (t !== topic || !packet.retain) return;
        clearTimeout(timer);
        resolve(payload);
      });
    });
    await client.subscribeAsync(topic, { qos: 1 });
    return await arrived;
  } finally {
    await client.endAsync(true).catch(() => {});
  }
}

export interface ScopeSyncOptions {
  cache: IdentityCache;
  gatewayId: string;
  clock: Clock;
  refreshSecs: number;
  broker?: SideChannelBroker;
  /** Edge mode: the child list is read from IoT Hub's device-scope API (not the twin document). */
  deviceScope?: DeviceScopeSource;
  /** The uplink's link state. Without it, online means "a resync hook ran and no disconnect since". */
  isOnline?: () => boolean;
  onChange?: (change: ScopeChange) => void;
  onError?: (err: Error) => void;
}

export class ScopeSync {
  private transport: UplinkTransport | null = null;
  private online = false;
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private desiredTimer: NodeJS.Timeout | null = null;
  private lastTargetedMonoMs = -Infinity;
  private lastSyncMonoMs = -Infinity;
  private unknownIntervalMs = UNKNOWN_REFRESH_INTERVAL_MS_MIN;
  private retryMs = DEVICE_SCOPE_RETRY_MS_MIN;
  private retryTimer: NodeJS.Timeout | null = null;
  private readonly follower: ScopeFollower | null;
  private readonly askedFor = new Set<string>();
  private readonly watched = new WeakSet<UplinkTransport>();
  syncs = 0;
  errors = 0;
  /** Full reads an unknown device id set off (each costs the uplink a scope document). */
  targetedReads = 0;

  constructor(private readonly opts: ScopeSyncOptions) {
    this.follower =
      opts.broker === undefined
        ? null
        : new ScopeFollower(
            opts.broker,
            scopeTopic(opts.gatewayId),
            (payload) => this.applyRetained(payload),
            (err) => opts.onError?.(err),
          );
  }

  /** The resync hook: runs on every uplink connect, before the drain. */
  readonly hook = {
    name: 'identities',
    run: async (transport: UplinkTransport): Promise<void> => {
      this.attach(transport);
      this.cancelDesired();
      if (transport.twin === undefined && this.follower !== null) await this.follower.start();
      else if (this.opts.deviceScope !== undefined) await this.refreshOrRetry();
      else await this.refresh();
    },
  };

  start(): void {
    this.timer = setInterval(() => {
      if (this.isOnline() && !this.follower?.following) void this.refresh().catch(() => {});
    }, this.opts.refreshSecs * 1000);
    this.timer.unref();
  }

  stop(): void {
    this.cancelDesired();
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.online = false;
    void this.follower?.stop();
  }

  private isOnline(): boolean {
    return this.opts.isOnline?.() ?? this.online;
  }

  private attach(transport: UplinkTransport): void {
    this.transport = transport;
    this.online = true;
    if (this.watched.has(transport)) return;
    this.watched.add(transport);
    transport.onDisconnect(() => {
      this.online = false;
      void this.follower?.stop();
    });
    // Twin desired patches arrive while connected; a patch touching the scope means a fresh full read.
    transport.twin?.onDesired((patch) => {
      if (!(SCOPE_TWIN_PROPERTY in patch)) return;
      this.cancelDesired();
      this.desiredTimer = setTimeout(() => void this.refresh().catch(() => {}), DESIRED_SETTLE_MS);
    });
  }

  private cancelDesired(): void {
    if (this.desiredTimer !== null) clearTimeout(this.desiredTimer);
    this.desiredTimer = null;
  }

  /** An unknown device tried to connect: read the scope if online, the cache is stale, and not read too recently. */
  requestDevice(deviceId: string): void {
    const now = this.opts.clock.monoMs();
    // The cheap checks first: a flood of unknown CONNECTs must not cost a link-state query each.
    const interval = this.unknownIntervalMs;
    if (now - this.lastSyncMonoMs < interval || now - this.lastTargetedMonoMs < interval) return;
    if (this.askedFor.has(deviceId) || this.askedFor.size >= UNKNOWN_IDS_MAX) return;
    if (!this.isOnline() || this.follower?.following) return;
    this.askedFor.add(deviceId);
    this.lastTargetedMonoMs = now;
    this.unknownIntervalMs = Math.min(this.unknownIntervalMs * 2, UNKNOWN_REFRESH_INTERVAL_MS_MAX);
    this.targetedReads += 1;
    void this.refresh().catch(() => {});
  }

  /**
   * Edge mode's resync hook: a device-scope API that fails (a 401 for a rotated $edgeHub key, a 5xx) must not
   * hold the drain back, so the failure is counted and reported, and the read tried again with backoff.
   */
  private async refreshOrRetry(): Promise<void> {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    try {
      await this.refresh();
      this.retryMs = DEVICE_SCOPE_RETRY_MS_MIN;
    } catch {
      const delayMs = this.retryMs;
      this.retryMs = Math.min(this.retryMs * 2, this.opts.refreshSecs * 1000);
      this.retryTimer = setTimeout(() => {
        this.retryTimer = null;
        if (this.isOnline()) void this.refreshOrRetry();
      }, delayMs);
      this.retryTimer.unref();
    }
  }

  /** One full read of the scope; concurrent callers share it. Errors are reported and rethrown. */
  refresh(): Promise<void> {
    if (this.running === null) {
      let timer: NodeJS.Timeout | undefined;
      const limitMs = this.opts.deviceScope === undefined ? REFRESH_TIMEOUT_MS : DEVICE_SCOPE_REFRESH_TIMEOUT_MS;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`scope read took longer than ${limitMs} ms`)), limitMs);
      });
      this.running = Promise.race([this.readAndApply(), timeout]).finally(() => {
        clearTimeout(timer);
        this.running = null;
      });
    }
    return this.running;
  }

  private async readAndApply(): Promise<void> {
    try {
      const raw = await this.read();
      if (raw !== undefined) await this.apply(raw);
    } catch (err) {
      this.errors += 1;
      this.opts.onError?.(err as Error);
      throw err;
    }
  }

  /** A retained document from the follower: applied like a read, errors counted and reported by the follower. */
  private async applyRetained(payload: Buffer): Promise<void> {
    if (payload.length === 0) return;
    try {
      await this.apply(JSON.parse(payload.toString('utf8')));
    } catch (err) {
      this.errors += 1;
      throw err;
    }
  }

  private async apply(raw: unknown): Promise<void> {
    const doc = parseScopeDocument(raw, this.opts.gatewayId);
    const change = await this.opts.cache.applyScope(doc, this.opts.clock.wallMs());
    this.syncs += 1;
    this.lastSyncMonoMs = this.opts.clock.monoMs();
    if (change?.added.some((id) => this.askedFor.has(id))) this.unknownIntervalMs = UNKNOWN_REFRESH_INTERVAL_MS_MIN;
    this.askedFor.clear();
    if (change !== null) this.opts.onChange?.(change);
  }

  /** The raw document, or undefined when the cloud has none (the cache is then kept as it is). */
  private async read(): Promise<unknown> {
    const source = this.opts.deviceScope;
    if (source !== undefined) {
      const result = await fetchDeviceScope(source, this.opts.clock.wallMs());
      // IoT Hub's answer has no version; the cache's own lets it apply (it refuses only older ones).
      const version = Math.max(0, this.opts.cache.scopeVersion);
      return scopeDocumentFromApi(result, this.opts.gatewayId, source.hostName, version);
    }
    const twin = this.transport?.twin;
    if (twin !== undefined) {
      const { desired } = await twin.get();
      return desired[SCOPE_TWIN_PROPERTY] ?? undefined;
    }
    if (this.opts.broker === undefined) return undefined;
    const payload = await fetchRetained(this.opts.broker, scopeTopic(this.opts.gatewayId));
    return payload === null || payload.length === 0 ? undefined : JSON.parse(payload.toString('utf8'));
  }
}
