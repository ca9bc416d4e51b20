import { systemClock, type Clock } from '../../clock.js';
import { registerSecret } from '../../log/redact.js';
import { Backoff, type BackoffOptions } from '../backoff.js';
import { loadIdentity, saveIdentity, type ProvisionedIdentity } from './cache.js';
import type { LoadedProvisioning } from './files.js';
import { ProvisioningError, register, type Assignment, type RegisterOptions } from './register.js';

/**
 * The gateway's identity through DPS: the cached assignment when there is one (so a boot needs no DPS), a
 * registration in the background when there is none or the hub refused the cached one. Registrations are
 * spaced by a backoff of their own (full jitter, firmware/uplink/backoff.ts), never shorter than the
 * `retry-after` DPS last sent, and it starts over only once the hub has accepted an identity: a DPS that
 * keeps assigning a hub that keeps refusing is asked ever more rarely, up to once per ceiling.
 */

export type ProvisioningState = 'unprovisioned' | 'provisioning' | 'provisioned' | 'refused' | 'unavailable';

export interface ProvisioningStatus {
  state: ProvisioningState;
  idScope: string;
  registrationId: string;
  assignedHub: string | null;
  deviceId: string | null;
  /** Where the identity in use came from: the data directory, or DPS during this run. */
  source: 'cache' | 'dps' | null;
  provisionedAtWallMs: number | null;
  /** Registrations attempted during this run, and how many DPS answered with an assignment. */
  attempts: number;
  assignments: number;
  /** Why the gateway (re)registers: the hub's refusal of the cached identity, or no cache. */
  reason: string | null;
  lastError: string | null;
  /** DPS's refusal: disabled, unauthorized, not-found, failed. */
  refusal: string | null;
  nextAttemptInMs: number | null;
}

/** First delay ceiling after a failed registration, ms: DPS allows a unit a few hundred registrations a minute. */
export const PROVISIONING_BACKOFF_BASE_MS = 5_000;
/** At most an hour between registrations: a refusal is put right in the portal, and then the gateway follows. */
export const PROVISIONING_BACKOFF_MAX_MS = 3_600_000;
/** One registration, polling included, ms: the SDK would poll a throttled (429) registration forever. */
export const REGISTRATION_TIMEOUT_MS = 60_000;

export interface ProvisionerOptions {
  loaded: LoadedProvisioning;
  registrationId: string;
  /** The gateway's id: DPS must assign this device id, since stored messages carry it. */
  gatewayId: string;
  dataDir: string;
  clock?: Clock;
  backoff?: BackoffOptions;
  timeoutMs?: number;
  /** A new assignment is in the cache: the uplink should connect now. */
  onAssigned: () => void;
  onError: (err: Error) => void;
  /** The registration itself; tests count calls through it. */
  register?: (opts: RegisterOptions) => Promise<Assignment>;
}

export class Provisioner {
  private current: ProvisionedIdentity | null = null;
  private source: ProvisioningStatus['source'] = null;
  private state: ProvisioningState = 'unprovisioned';
  private wanted = true;
  private reason: string | null = 'no identity in the data directory';
  private running: Promise<void> | null = null;
  private notBeforeMonoMs = 0;
  private attempts = 0;
  private assignments = 0;
  private lastError: string | null = null;
  private refusal: string | null = null;
  private stopped = false;
  private readonly stopping = new AbortController();
  private readonly clock: Clock;
  private readonly backoff: Backoff;

  constructor(private readonly opts: ProvisionerOptions) {
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff({
      baseMs: PROVISIONING_BACKOFF_BASE_MS,
      maxMs: PROVISIONING_BACKOFF_MAX_MS,
      ...opts.backoff,
    });
    const a = opts.loaded.attestation;
    if (a.kind !== 'x509') registerSecret(a.keyBase64);
  }

  /** Reads the cache; with an identity there the gateway connects without DPS. */
  async load(): Promise<void> {
    const { idScope } = this.opts.loaded.config;
    const cached = await loadIdentity(this.opts.dataDir, idScope, this.opts.registrationId, this.opts.onError);
    if (cached === null) return;
    this.use(cached, 'cache');
    this.wanted = false;
    this.reason = null;
  }

  identity(): ProvisionedIdentity | null {
    return this.current;
  }

  /** Starts a registration when one is wanted and due; true while one runs. */
  registerIfDue(): boolean {
    if (this.running !== null) return true;
    if (!this.wanted || this.stopped || this.clock.monoMs() < this.notBeforeMonoMs) return false;
    this.running = this.attempt().finally(() => (this.running = null));
    return true;
  }

  /** The hub refused `identity`: register again (the device was moved to another hub, or deleted). */
  refusedByHub(identity: ProvisionedIdentity, why: string): void {
    if (identity !== this.current || this.wanted) return;
    this.wanted = true;
    this.reason = `${identity.assignedHub} refused ${identity.deviceId}: ${why}`;
  }

  /** The hub accepted the identity in use: the registration backoff starts over. */
  accepted(): void {
    this.backoff.reset();
    this.notBeforeMonoMs = 0;
  }

  /** What the next connect would wait for, for the connect error the operator reads. */
  waitingFor(): string {
    const inMs = Math.max(0, this.notBeforeMonoMs - this.clock.monoMs());
    const last = this.lastError === null ? '' : `; last attempt: ${this.lastError}`;
    return `not provisioned (${this.reason ?? 'no identity'}), next DPS attempt in ${Math.ceil(inMs / 1000)} s${last}`;
  }

  status(): ProvisioningStatus {
    const waiting = this.wanted && this.running === null;
    return {
      state: this.state,
      idScope: this.opts.loaded.config.idScope,
      registrationId: this.opts.registrationId,
      assignedHub: this.current?.assignedHub ?? null,
      deviceId: this.current?.deviceId ?? null,
      source: this.source,
      provisionedAtWallMs: this.current?.provisionedAtWallMs ?? null,
      attempts: this.attempts,
      assignments: this.assignments,
      reason: this.wanted ? this.reason : null,
      lastError: this.lastError,
      refusal: this.refusal,
      nextAttemptInMs: waiting ? Math.max(0, this.notBeforeMonoMs - this.clock.monoMs()) : null,
    };
  }

  /** Abandons a registration under way (DPS may take a minute; a stop has seconds); none starts afterwards. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.stopping.abort();
    await this.running;
  }

  private use(identity: ProvisionedIdentity, source: 'cache' | 'dps'): void {
    registerSecret(identity.deviceKey);
    this.current = identity;
    this.source = source;
    this.state = 'provisioned';
  }

  private async attempt(): Promise<void> {
    this.attempts += 1;
    this.state = 'provisioning';
    try {
      const assignment = await (this.opts.register ?? register)({
        loaded: this.opts.loaded,
        registrationId: this.opts.registrationId,
        timeoutMs: this.opts.timeoutMs ?? REGISTRATION_TIMEOUT_MS,
        signal: this.stopping.signal,
      });
      this.assignments += 1;
      if (assignment.deviceId !== this.opts.gatewayId) {
        throw new ProvisioningError(
          'refused',
          'failed',
          `DPS assigned device id "${assignment.deviceId}", but this ` +
            `gateway is "${this.opts.gatewayId}" (identity.gatewayId, or the registration id without it)`,
          null,
        );
      }
      const identity: ProvisionedIdentity = {
        idScope: this.opts.loaded.config.idScope,
        registrationId: this.opts.registrationId,
        assignedHub: assignment.assignedHub,
        deviceId: assignment.deviceId,
        deviceKey: assignment.deviceKey,
        provisionedAtWallMs: this.clock.wallMs(),
      };
      await saveIdentity(this.opts.dataDir, identity);
      // Until the hub takes it, an assignment counts as a failure for the spacing of the next one: a hub
      // that refuses what DPS keeps assigning (the device disabled there) must not make a registration loop.
      this.notBeforeMonoMs = this.clock.monoMs() + this.backoff.nextDelayMs();
      this.use(identity, 'dps');
      this.wanted = false;
      this.reason = null;
      this.lastError = null;
      this.refusal = null;
      this.opts.onAssigned();
    } catch (err) {
      this.failed(err as Error);
    }
  }

  private failed(err: Error): void {
    const dps = err instanceof ProvisioningError ? err : null;
    const delayMs = Math.max(this.backoff.nextDelayMs(), dps?.retryAfterMs ?? 0);
    this.notBeforeMonoMs = this.clock.monoMs() + delayMs;
    this.lastError = err.message;
    this.refusal = dps?.kind === 'refused' ? dps.reason : null;
    // With a cached identity the gateway goes on trying it: the hub may take it again (device re-enabled).
    this.state = dps?.kind === 'refused' ? 'refused' : this.current === null ? 'unavailable' : 'provisioned';
    this.opts.onError(err);
  }
}
