import type { IdentityTwins } from '../uplink/edge/twins.js';
import { UplinkError, type TwinChannel } from '../uplink/types.js';
import { isJsonObject } from '../json.js';
import type { Props } from './merge.js';
import { TWINS_MAX, type TwinStore } from './store.js';
import { EDGE_TWIN_PASSTHROUGH_MS, TIMED_OUT, bounded, timed } from './edge-requests.js';

export { EDGE_TWIN_PASSTHROUGH_MS, EDGE_TWIN_REQUEST_TIMEOUT_MS } from './edge-requests.js';

/**
 * Edge mode's children's twins (issue 18): each child's twin is its own twin in IoT Hub, reached on that
 * child's upstream connection (firmware/uplink/edge/twins.ts), as edgeHub does for a transparent gateway.
 * A child's reported patches made offline wait folded in the twin store (so in order, merged, and across
 * restarts) and go up on its own connection when that comes up; each (re)connect and each desired-patch
 * notification re-reads the twin, whose desired section and $version the store keeps, and the child is
 * sent what it has not seen. While a child's connection is up its twin GET and PATCH go through to IoT Hub.
 */

/**
 * Identities whose twins are synced at once (each sync is a PATCH and a GET on that child's connection).
 * IoT Hub throttles twin operations per hub (S1: 10 per second per unit): after an outage, 100 children
 * syncing together would be refused in bulk, while 4 at a time keep the children's connections' round
 * trips busy without a burst.
 */
export const EDGE_TWIN_SYNCS_MAX = 4;

const refusedByCloud = (err: unknown) => err instanceof UplinkError && err.code === 'REJECTED';

export interface EdgeTwinSyncOptions {
  store: TwinStore;
  gatewayId: string;
  /** Sends a connected child what it has not seen of its desired section (TwinSync.deliver). */
  deliver(deviceId: string): Promise<void>;
  /** True while the gateway's own link is up: connections for twin work are opened only then. */
  isLinkUp(): boolean;
  /** Children connected to the local hub now: their twins are wanted at every gateway (re)connect. */
  connected(): string[];
  onError(err: Error): void;
}

export interface EdgeTwinStatus {
  /** Syncs of one identity's twin done (push and/or read), failed, waiting for a slot. */
  syncs: number;
  failures: number;
  queued: number;
  /** Reported patches accepted by IoT Hub, refused by it (not resent until the child reports again). */
  pushes: number;
  refused: number;
  /** Desired sections read from children's twins; GETs and PATCHes children made through to IoT Hub. */
  pulls: number;
  passedThrough: number;
  lastError: string | null;
}

interface Job {
  pull: boolean;
}

/** A twin document as the hub answers a GET, each section with its $version. */
export interface TwinAnswer {
  desired: Props;
  reported: Props;
}

export class EdgeTwinSync {
  private links: IdentityTwins | null = null;
  private readonly unsubscribes: Array<() => void> = [];
  /** Identities waiting for a sync slot, at most one entry each, so bounded by TWINS_MAX. */
  private readonly waiting = new Map<string, Job>();
  private readonly syncing = new Set<string>();
  /** Per identity, its twin work in order: concurrent twin requests on one SDK client can go unanswered. */
  private readonly chains = new Map<string, Promise<unknown>>();
  private readonly watched = new WeakSet<TwinChannel>();
  /** Per child, the generation of its pending patch IoT Hub refused; one entry per twin, so ≤ TWINS_MAX. */
  private readonly refusedGeneration = new Map<string, number>();
  private readonly counters = { syncs: 0, failures: 0, pushes: 0, refused: 0, pulls: 0, passedThrough: 0 };
  private lastError: string | null = null;
  private closed = false;

  constructor(private readonly opts: EdgeTwinSyncOptions) {
    this.unsubscribes.push(opts.store.onReported((deviceId) => this.reported(deviceId)));
  }

  /** The uplink's children's connections, once it has started; identities already up are synced now. */
  attach(links: IdentityTwins): void {
    this.links = links;
    this.unsubscribes.push(links.onLinkUp((identity) => this.enqueue(identity, true)));
    for (const { deviceId } of this.opts.store.pending()) {
      if (links.twin(deviceId) !== null) this.enqueue(deviceId, true);
    }
  }

  /** A resync hook: at every gateway (re)connect, children with pending patches or connected locally are wanted. */
  readonly hook = {
    name: 'child-twins',
    run: async (): Promise<void> => {
      const ids = new Set([...this.opts.store.pending().map((p) => p.deviceId), ...this.opts.connected()]);
      for (const id of ids) if (id !== this.opts.gatewayId) this.need(id, false);
    },
  };

  /** A child connected locally: its twin is read from IoT Hub once its connection is up. */
  childConnected(deviceId: string): void {
    if (this.links?.twin(deviceId) === null) this.need(deviceId, true);
  }

  /**
   * A child's twin GET: IoT Hub's answer while its connection is up (the cache takes it for later), or null
   * when the cache must answer (offline, or IoT Hub slower than EDGE_TWIN_PASSTHROUGH_MS).
   */
  async get(deviceId: string): Promise<TwinAnswer | null> {
    const twin = this.links?.twin(deviceId) ?? null;
    if (twin === null) return null;
    const read = this.serial(deviceId, () => this.read(deviceId, twin));
    const answer = await timed(read, EDGE_TWIN_PASSTHROUGH_MS).catch((err: Error) => this.failed(deviceId, err));
    if (answer === undefined || answer === TIMED_OUT) return null;
    this.counters.passedThrough += 1;
    return answer;
  }

  /**
   * A child's reported patch while its connection is up: after what is pending, it goes to IoT Hub first and
   * into the cache only once accepted, so a patch IoT Hub refuses (its text is the answer) leaves no trace.
   * Null when the cache must take it as offline (no connection, a failure, IoT Hub slower than
   * EDGE_TWIN_PASSTHROUGH_MS; an abandoned request does not touch the cache when it is answered late).
   */
  async report(deviceId: string, patch: Props): Promise<{ version: number } | { refused: string } | null> {
    const twin = this.links?.twin(deviceId) ?? null;
    if (twin === null) return null;
    const request = { abandoned: false };
    const work = this.serial(deviceId, () => this.reportNow(deviceId, twin, patch, request));
    const outcome = await timed(work, EDGE_TWIN_PASSTHROUGH_MS).catch((err: Error) => this.failed(deviceId, err));
    if (outcome === undefined || outcome === TIMED_OUT || outcome === null) {
      request.abandoned = true;
      return null;
    }
    this.counters.passedThrough += 1;
    return outcome;
  }

  private async reportNow(deviceId: string, twin: TwinChannel, patch: Props, request: { abandoned: boolean }) {
    if (request.abandoned) return null;
    // What is pending goes first; if IoT Hub refused it (reported then), this patch still goes through.
    await this.push(deviceId, twin);
    try {
      await bounded(twin.patchReported(patch), `reported patch of "${deviceId}"`);
    } catch (err) {
      if (!refusedByCloud(err)) throw err;
      this.counters.refused += 1;
      return { refused: (err as Error).message };
    }
    this.counters.pushes += 1;
    if (request.abandoned) return null;
    const version = await this.opts.store.patchReported(deviceId, patch);
    const item = this.opts.store.pendingOf(deviceId);
    if (item !== null) await this.opts.store.pushed(deviceId, item.generation);
    return { version };
  }

  status(): EdgeTwinStatus {
    return { ...this.counters, queued: this.waiting.size, lastError: this.lastError };
  }

  close(): void {
    this.closed = true;
    this.waiting.clear();
    for (const unsubscribe of this.unsubscribes.splice(0)) unsubscribe();
  }

  private reported(deviceId: string): void {
    if (deviceId !== this.opts.gatewayId) this.need(deviceId, false);
  }

  /** Twin work for the identity: synced now if its connection is up, else its connection is wanted. */
  private need(deviceId: string, pull: boolean): void {
    if (this.closed || this.links === null) return;
    if (this.links.twin(deviceId) !== null) return this.enqueue(deviceId, pull);
    if (this.opts.isLinkUp()) this.links.want(deviceId);
  }

  private enqueue(deviceId: string, pull: boolean): void {
    if (this.closed || deviceId === this.opts.gatewayId) return;
    const job = this.waiting.get(deviceId);
    if (job !== undefined) return void (job.pull ||= pull);
    // One entry per identity with a twin or a local connection: more means ids this hub cannot keep twins of.
    if (this.waiting.size >= TWINS_MAX) {
      return void this.failed(deviceId, new Error(`sync queue full (TWINS_MAX ${TWINS_MAX})`));
    }
    this.waiting.set(deviceId, { pull });
    this.next();
  }

  /** Starts waiting syncs while slots are free; an identity already syncing waits for its own to finish. */
  private next(): void {
    for (const [deviceId, job] of this.waiting) {
      if (this.syncing.size >= EDGE_TWIN_SYNCS_MAX) return;
      if (this.syncing.has(deviceId)) continue;
      this.waiting.delete(deviceId);
      this.syncing.add(deviceId);
      void this.serial(deviceId, () => this.sync(deviceId, job))
        .then(
          () => void (this.counters.syncs += 1),
          (err: Error) => void this.failed(deviceId, err),
        )
        .finally(() => {
          this.syncing.delete(deviceId);
          this.next();
        });
    }
  }

  private async sync(deviceId: string, job: Job): Promise<void> {
    const twin = this.links?.twin(deviceId) ?? null;
    // Down again since it was queued: its next link-up queues it again.
    if (twin === null || this.closed) return;
    await this.push(deviceId, twin);
    if (job.pull) await this.read(deviceId, twin);
    if (!this.watched.has(twin)) {
      // After the first request: the listener's own twin fetch would otherwise race that request's.
      this.watched.add(twin);
      twin.onDesired(() => this.enqueue(deviceId, true));
    }
  }

  /** The pending patch on the identity's own twin; IoT Hub's refusal text when it refused it. */
  private async push(deviceId: string, twin: TwinChannel): Promise<string | null> {
    const item = this.opts.store.pendingOf(deviceId);
    if (item === null || this.refusedGeneration.get(deviceId) === item.generation) return null;
    try {
      await bounded(twin.patchReported(item.patch), `reported patch of "${deviceId}"`);
    } catch (err) {
      if (!refusedByCloud(err)) throw err;
      this.refusedGeneration.set(deviceId, item.generation);
      this.counters.refused += 1;
      const message = `reported properties of "${deviceId}" refused by IoT Hub: ${(err as Error).message}`;
      this.lastError = message;
      this.opts.onError(new Error(message, { cause: err }));
      return (err as Error).message;
    }
    this.counters.pushes += 1;
    await this.opts.store.pushed(deviceId, item.generation);
    return null;
  }

  /** The identity's twin from IoT Hub into the store; the child gets what changed of its desired section. */
  private async read(deviceId: string, twin: TwinChannel): Promise<TwinAnswer> {
    const answer = await bounded(twin.get(), `twin of "${deviceId}"`);
    const { desired, reported } = answer;
    const desiredVersion = typeof desired.$version === 'number' ? desired.$version : 0;
    // IoT Hub's versions only grow, and reads of one identity are in order: a lower one is a new twin.
    const held = this.opts.store.get(deviceId).desiredVersion;
    if (desiredVersion < held) await this.opts.store.restartDesiredVersions(deviceId);
    await this.opts.store.setDesired(deviceId, desired, desiredVersion);
    const reportedVersion = reported.$version;
    if (typeof reportedVersion === 'number') await this.opts.store.adoptReported(deviceId, reported, reportedVersion);
    this.counters.pulls += 1;
    await this.opts.deliver(deviceId);
    return { desired: isJsonObject(desired) ? desired : {}, reported: isJsonObject(reported) ? reported : {} };
  }

  private serial<T>(deviceId: string, work: () => Promise<T>): Promise<T> {
    const run = (this.chains.get(deviceId) ?? Promise.resolve()).then(work);
    const tail = run.catch(() => {});
    this.chains.set(deviceId, tail);
    void tail.then(() => this.chains.get(deviceId) === tail && this.chains.delete(deviceId));
    return run;
  }

  private failed(deviceId: string, err: Error): undefined {
    this.counters.failures += 1;
    this.lastError = `twin of "${deviceId}": ${err.message}`;
    this.opts.onError(new Error(this.lastError, { cause: err }));
    return undefined;
  }
}
