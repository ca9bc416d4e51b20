import mqtt from 'mqtt';
import type { Clock } from '../clock.js';
import type { UplinkTransport } from '../uplink/types.js';
import type { IdentityCache, ScopeChange } from './cache.js';
import { parseScopeDocument } from './identity.js';

/**
 * Keeps the identity cache in step with the cloud: at every uplink (re)connect (a resync hook), every
 * `identityRefreshSecs` while connected, and once for an unknown device that tries to connect.
 * Sources: the gateway twin's desired `outpostScope` (azure), or a retained document on
 * `outpost/<gatewayId>/scope` (mqtt; see `scopeTopic`).
 */

/** Where the mqtt uplink's broker is; the scope document is read from it with a short-lived connection. */
export interface ScopeBrokerOptions {
  url: string;
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  username?: string;
  password?: string;
}

export const SCOPE_TWIN_PROPERTY = 'outpostScope';
/** How long a retained scope document may take to arrive after subscribing, ms. */
const RETAINED_WAIT_MS = 5_000;
/** A scope read that has not finished by then is abandoned (a twin GET on a dying link may never settle), ms. */
const REFRESH_TIMEOUT_MS = 15_000;
/**
 * A desired-properties change is read after this quiet period, ms. The SDK also reports the whole desired
 * section when it fetches the twin at connect; reading then would race the resync hook's own read, and
 * concurrent twin GETs on one SDK client can leave one never answered.
 */
export const DESIRED_SETTLE_MS = 500;
/** Targeted refreshes for unknown devices: at most one per this period, so random ids cannot flood the cloud, ms. */
const UNKNOWN_REFRESH_INTERVAL_MS = 10_000;
/** Unknown ids remembered between full refreshes, ids; each gets at most one targeted refresh. */
const UNKNOWN_IDS_MAX = 1_000;

export function scopeTopic(gatewayId: string): string {
  return `outpost/${gatewayId}/scope`;
}

/** Reads the retained message on `topic`; null when the broker has none within `waitMs`. */
export async function fetchRetained(options: ScopeBrokerOptions, topic: string, waitMs = RETAINED_WAIT_MS): Promise<Buffer | null> {
  const client = await mqtt.connectAsync(options.url, {
    ca: options.ca, cert: options.cert, key: options.key, username: options.username, password: options.password,
    clean: true, reconnectPeriod: 0, connectTimeout: waitMs, writeCache: false,
  });
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
  broker?: ScopeBrokerOptions;
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
  private readonly askedFor = new Set<string>();
  private readonly watched = new WeakSet<UplinkTransport>();
  syncs = 0;
  errors = 0;

  constructor(private readonly opts: ScopeSyncOptions) {}

  /** The resync hook: runs on every uplink connect, before the drain. */
  readonly hook = {
    name: 'identities',
    run: async (transport: UplinkTransport): Promise<void> => {
      this.attach(transport);
      this.cancelDesired();
      await this.refresh();
    },
  };

  start(): void {
    this.timer = setInterval(() => {
      if (this.isOnline()) void this.refresh().catch(() => {});
    }, this.opts.refreshSecs * 1000);
    this.timer.unref();
  }

  stop(): void {
    this.cancelDesired();
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.online = false;
  }

  private isOnline(): boolean {
    return this.opts.isOnline?.() ?? this.online;
  }

  private attach(transport: UplinkTransport): void {
    this.transport = transport;
    this.online = true;
    if (this.watched.has(transport)) return;
    this.watched.add(transport);
    transport.onDisconnect(() => (this.online = false));
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

  /** An unknown device tried to connect: look it up once, if online and not asked for too recently. */
  requestDevice(deviceId: string): void {
    const now = this.opts.clock.monoMs();
    if (!this.isOnline() || this.askedFor.has(deviceId) || this.askedFor.size >= UNKNOWN_IDS_MAX) return;
    if (now - this.lastTargetedMonoMs < UNKNOWN_REFRESH_INTERVAL_MS) return;
    this.askedFor.add(deviceId);
    this.lastTargetedMonoMs = now;
    void this.refresh().catch(() => {});
  }

  /** One full read of the scope; concurrent callers share it. Errors are reported and rethrown. */
  refresh(): Promise<void> {
    if (this.running === null) {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`scope read took longer than ${REFRESH_TIMEOUT_MS} ms`)), REFRESH_TIMEOUT_MS);
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
      if (raw === undefined) return;
      const change = await this.opts.cache.applyScope(parseScopeDocument(raw, this.opts.gatewayId), this.opts.clock.wallMs());
      this.syncs += 1;
      this.askedFor.clear();
      if (change !== null) this.opts.onChange?.(change);
    } catch (err) {
      this.errors += 1;
      this.opts.onError?.(err as Error);
      throw err;
    }
  }

  /** The raw document, or undefined when the cloud has none (the cache is then kept as it is). */
  private async read(): Promise<unknown> {
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
