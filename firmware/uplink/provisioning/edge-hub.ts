import { randomBytes } from 'node:crypto';
import { systemClock, type Clock } from '../../clock.js';
import { registerSecret } from '../../log/redact.js';
import { Backoff, type BackoffOptions } from '../backoff.js';
import { EDGE_HUB_MODULE_ID, type EdgeHubCredentials } from '../edge/token.js';
import type { ProvisionedIdentity } from './cache.js';
import { loadEdgeHubKey, saveEdgeHubKey, type EdgeHubKeyRecord } from './edge-hub-cache.js';
import { getModule, putModule, RegistryError, type RegistryAccess } from './module-registry.js';

/**
 * A provisioned IoT Edge gateway's `$edgeHub` module, set up by the gateway itself from its device identity,
 * as IoT Edge's identity service does: once the hub has accepted the device, its registry is asked for the
 * module with the device's own credentials; a missing module is created, one whose keys are not the gateway's
 * (IoT Hub makes its own when DPS creates an IoT Edge device) is re-keyed with If-Match on its etag. The key is
 * random (32 bytes), sealed in the data directory (edge-hub-cache.ts): a later boot uses it offline, and only
 * GETs the module once the link is up (no PUT when IoT Hub still has it). After a re-provisioning to another
 * hub the module is set up there. Failures (401/403, 5xx, no network) are retried on a backoff, never in a loop.
 */

/** PUTs one setup makes when the module changed under it (412) or appeared meanwhile (409): aziot-identityd's bound. */
export const EDGE_HUB_CONFLICT_RETRIES_MAX = 3;
/** Shortest and longest wait between failed setups, ms: a refused device is put right in the portal, then followed. */
export const EDGE_HUB_BACKOFF_BASE_MS = 5_000;
/** At most ten minutes between setups, so a fixed registry is seen soon without hammering it. */
export const EDGE_HUB_BACKOFF_MAX_MS = 600_000;
/** The module key's size: IoT Hub takes 16 to 64 bytes; 32 is what its portal generates. */
const EDGE_HUB_KEY_BYTES = 32;

export type EdgeHubModuleState = 'absent' | 'setting-up' | 'ready' | 'failed';

export interface EdgeHubModuleStatus {
  state: EdgeHubModuleState;
  /** The hub the key in use was set up on; null before the first setup. */
  hub: string | null;
  /** The key in use came from the data directory, or was set up on the hub during this run. */
  source: 'cache' | 'hub' | null;
  /** IoT Hub confirmed the module's keys during this run. */
  verified: boolean;
  /** PUTs made during this run (creates and re-keys). */
  puts: number;
  lastError: string | null;
  nextAttemptInMs: number | null;
}

export interface EdgeHubModuleOptions {
  dataDir: string;
  /** The identity in use (the provisioner's): the module belongs to it. */
  identity: () => ProvisionedIdentity | null;
  /** How the registry is reached as that identity (device key or certificate, CA). */
  access: (identity: ProvisionedIdentity) => RegistryAccess;
  clock?: Clock;
  backoff?: BackoffOptions;
  /** The module is set up (again): the children's connections and the device-scope read may go now. */
  onReady: () => void;
  onError: (err: Error) => void;
}

export class EdgeHubModule {
  private current: EdgeHubKeyRecord | null = null;
  private source: EdgeHubModuleStatus['source'] = null;
  private verifiedFor: ProvisionedIdentity | null = null;
  private verifiedAtMonoMs = 0;
  private state: EdgeHubModuleState = 'absent';
  private running: Promise<void> | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private notBeforeMonoMs = 0;
  private puts = 0;
  private lastError: string | null = null;
  private stopped = false;
  private readonly clock: Clock;
  private readonly backoff: Backoff;

  constructor(private readonly opts: EdgeHubModuleOptions) {
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff({ baseMs: EDGE_HUB_BACKOFF_BASE_MS, maxMs: EDGE_HUB_BACKOFF_MAX_MS, ...opts.backoff });
  }

  /** Reads the sealed key of the identity in use, so a boot offline has its `$edgeHub` credentials at once. */
  async load(): Promise<void> {
    const identity = this.opts.identity();
    if (identity === null) return;
    const record = await loadEdgeHubKey(this.opts.dataDir, identity.assignedHub, identity.deviceId, this.opts.onError);
    if (record === null) return;
    registerSecret(record.key);
    this.current = record;
    this.source = 'cache';
    this.state = 'ready';
  }

  /** The module's credentials for the identity in use; null until the module is set up on its hub. */
  credentials(): EdgeHubCredentials | null {
    const identity = this.opts.identity();
    if (identity === null || !this.holds(identity)) return null;
    return { hostName: identity.assignedHub, gatewayId: identity.deviceId, key: this.current!.key };
  }

  /** The hub accepted `identity`: confirm (or set up) its module, in the background, once per run and hub. */
  ensure(identity: ProvisionedIdentity): void {
    // After a failure the retry timer is what starts the next attempt; a reconnect meanwhile does not.
    if (this.clock.monoMs() < this.notBeforeMonoMs) return;
    this.start(identity);
  }

  /**
   * IoT Hub refused the module's token (the device-scope API's 401): its keys may have been changed there, so
   * the module is checked again (and re-keyed), at most once per backoff base; no-op while a setup is pending.
   */
  refusedByHub(): void {
    const identity = this.opts.identity();
    if (identity === null || this.verifiedFor !== identity) return;
    if (this.clock.monoMs() - this.verifiedAtMonoMs < this.backoffBaseMs()) return;
    this.verifiedFor = null;
    this.ensure(identity);
  }

  status(): EdgeHubModuleStatus {
    const waiting = this.state === 'failed' && this.retryTimer !== null;
    return {
      state: this.state,
      hub: this.current?.assignedHub ?? null,
      source: this.source,
      verified: this.verifiedFor !== null && this.verifiedFor === this.opts.identity(),
      puts: this.puts,
      lastError: this.lastError,
      nextAttemptInMs: waiting ? Math.max(0, this.notBeforeMonoMs - this.clock.monoMs()) : null,
    };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    await this.running?.catch(() => {});
  }

  private start(identity: ProvisionedIdentity): void {
    if (this.stopped || this.running !== null || this.verifiedFor === identity) return;
    this.running = this.setUp(identity).finally(() => (this.running = null));
  }

  private holds(identity: ProvisionedIdentity): boolean {
    return this.current?.assignedHub === identity.assignedHub && this.current.deviceId === identity.deviceId;
  }

  private async setUp(identity: ProvisionedIdentity): Promise<void> {
    const held = this.holds(identity);
    if (!held) this.state = 'setting-up';
    const key = held ? this.current!.key : randomBytes(EDGE_HUB_KEY_BYTES).toString('base64');
    registerSecret(key);
    try {
      const changed = await this.reconcile(this.opts.access(identity), key);
      if (changed || !held) {
        const { assignedHub, deviceId } = identity;
        const record = { assignedHub, deviceId, key, setUpAtWallMs: this.clock.wallMs() };
        await saveEdgeHubKey(this.opts.dataDir, record);
        this.current = record;
        this.source = 'hub';
      }
      this.verifiedFor = identity;
      this.verifiedAtMonoMs = this.clock.monoMs();
      this.state = 'ready';
      this.lastError = null;
      this.backoff.reset();
      this.opts.onReady();
    } catch (err) {
      this.failed(identity, err as Error);
    }
  }

  /** GET, then PUT when the module is missing or holds other keys; true when a PUT was made. */
  private async reconcile(access: RegistryAccess, key: string): Promise<boolean> {
    for (let attempt = 0; attempt <= EDGE_HUB_CONFLICT_RETRIES_MAX; attempt += 1) {
      const found = await getModule(access, EDGE_HUB_MODULE_ID);
      if (found !== null && found.primaryKey === key && found.secondaryKey === key) return false;
      try {
        // No If-Match creates (409 if another writer was first); If-Match replaces only what was read (412).
        await putModule(access, EDGE_HUB_MODULE_ID, { primaryKey: key, secondaryKey: key }, found?.etag);
        this.puts += 1;
        return true;
      } catch (err) {
        const status = err instanceof RegistryError ? err.status : 0;
        if (status !== 409 && status !== 412) throw err;
      }
    }
    throw new RegistryError(
      `the $edgeHub module changed under each of ${EDGE_HUB_CONFLICT_RETRIES_MAX + 1} PUTs (409/412)`,
      412,
    );
  }

  private failed(identity: ProvisionedIdentity, err: Error): void {
    const status = err instanceof RegistryError && err.status !== 0 ? ` (HTTP ${err.status})` : '';
    this.lastError = `$edgeHub setup on ${identity.assignedHub} failed${status}: ${err.message}`;
    // A key already held stays in use (credentials() still gives it: the children's connections may take it).
    this.state = 'failed';
    // Never under the base: full jitter alone may draw 0, and a refusal must not be asked again at once.
    const delayMs = Math.max(this.backoff.nextDelayMs(), this.backoffBaseMs());
    this.notBeforeMonoMs = this.clock.monoMs() + delayMs;
    this.opts.onError(new Error(this.lastError, { cause: err }));
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      const now = this.opts.identity();
      if (now !== null) this.start(now);
    }, delayMs);
    this.retryTimer.unref();
  }

  private backoffBaseMs(): number {
    return this.opts.backoff?.baseMs ?? EDGE_HUB_BACKOFF_BASE_MS;
  }
}
