import path from 'node:path';
import nodePersist from 'node-persist';
import { TWIN_SECTION_BYTES_MAX, applyPatch, diff, foldPatch, withoutMetadata, type Props } from './merge.js';

/**
 * A twin per device (children and the gateway), persisted with node-persist under `<dataDir>/twins`.
 * Reported patches are applied at once to the local reported section — so a child reading its twin offline
 * sees its own writes — and folded into `pending`, which the twin sync pushes on reconnect. Desired comes
 * only from the cloud; `deliveredVersion` is what the connected child has already been sent.
 */

export interface TwinDoc {
  desired: Props;
  desiredVersion: number;
  reported: Props;
  reportedVersion: number;
  /** Reported changes the cloud has not acknowledged; null when in step. */
  pending: Props | null;
  /** Bumped at every local reported patch, so a push can tell whether more arrived meanwhile. */
  pendingGeneration: number;
  /** Desired section and version as last delivered to the child; the next delivery is the difference. */
  delivered: Props;
  deliveredVersion: number;
}

/** Twins kept, devices; one per child plus the gateway. */
export const TWINS_MAX = 1_001;

export class TwinError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TwinError';
  }
}

const emptyTwin = (): TwinDoc => ({ desired: {}, desiredVersion: 0, reported: {}, reportedVersion: 1, pending: null, pendingGeneration: 0, delivered: {}, deliveredVersion: 0 });

export class TwinStore {
  private readonly twins = new Map<string, TwinDoc>();
  /** Writes go out one at a time, each with the latest doc, so an older one can never land last. */
  private writes: Promise<unknown> = Promise.resolve();
  private readonly reportedListeners = new Set<() => void>();

  private constructor(private readonly storage: ReturnType<typeof nodePersist.create>) {}

  static async open(dataDir: string): Promise<TwinStore> {
    const storage = nodePersist.create({ dir: path.join(dataDir, 'twins'), writeQueue: false, expiredInterval: false, forgiveParseErrors: true });
    await storage.init();
    const store = new TwinStore(storage);
    for (const key of await storage.keys()) {
      const doc = (await storage.getItem(key)) as TwinDoc | undefined;
      if (doc !== undefined && store.twins.size < TWINS_MAX) store.twins.set(key, doc);
    }
    return store;
  }

  get(deviceId: string): TwinDoc {
    return this.twins.get(deviceId) ?? emptyTwin();
  }

  devices(): string[] {
    return [...this.twins.keys()];
  }

  private async save(deviceId: string, doc: TwinDoc): Promise<void> {
    if (!this.twins.has(deviceId) && this.twins.size >= TWINS_MAX) throw new TwinError(`twin store full (${TWINS_MAX} devices, "TWINS_MAX")`);
    this.twins.set(deviceId, doc);
    const write = this.writes.then(() => this.storage.setItem(deviceId, this.twins.get(deviceId)));
    this.writes = write.catch(() => {});
    await write;
  }

  /** A child's (or the gateway's) reported patch: applied locally and queued for the cloud. Returns the new version. */
  async patchReported(deviceId: string, patch: Props): Promise<number> {
    const doc = structuredClone(this.get(deviceId));
    applyPatch(doc.reported, patch);
    if (Buffer.byteLength(JSON.stringify(doc.reported)) > TWIN_SECTION_BYTES_MAX) {
      throw new TwinError(`reported properties of "${deviceId}" would exceed ${TWIN_SECTION_BYTES_MAX} bytes`);
    }
    doc.pending ??= {};
    foldPatch(doc.pending, patch);
    doc.pendingGeneration += 1;
    doc.reportedVersion += 1;
    await this.save(deviceId, doc);
    for (const listener of this.reportedListeners) listener();
    return doc.reportedVersion;
  }

  /** Called after each reported patch is saved (a sync pushes it while the link is up); returns an unsubscribe. */
  onReported(listener: () => void): () => void {
    this.reportedListeners.add(listener);
    return () => void this.reportedListeners.delete(listener);
  }

  /** Pending reported patches, with the generation to pass to `pushed` once the cloud accepted them. */
  pending(): Array<{ deviceId: string; patch: Props; generation: number }> {
    const out = [];
    for (const [deviceId, doc] of this.twins) {
      if (doc.pending !== null) out.push({ deviceId, patch: structuredClone(doc.pending), generation: doc.pendingGeneration });
    }
    return out;
  }

  /** The cloud accepted the pending patch of `generation`; anything newer stays pending. */
  async pushed(deviceId: string, generation: number): Promise<void> {
    const doc = this.twins.get(deviceId);
    if (doc === undefined || doc.pendingGeneration !== generation) return;
    await this.save(deviceId, { ...doc, pending: null });
  }

  /** The cloud's full desired section at `version`; an older version than the one held is ignored. */
  async setDesired(deviceId: string, desired: Props, version: number): Promise<void> {
    const doc = structuredClone(this.get(deviceId));
    if (version <= doc.desiredVersion) return;
    doc.desired = withoutMetadata(desired);
    doc.desiredVersion = version;
    await this.save(deviceId, doc);
  }

  /** What the child has not been sent yet, as a patch with the version it brings it to; null when in step. */
  undelivered(deviceId: string): { patch: Props; version: number } | null {
    const doc = this.twins.get(deviceId);
    if (doc === undefined || doc.desiredVersion <= doc.deliveredVersion) return null;
    return { patch: diff(doc.delivered, doc.desired), version: doc.desiredVersion };
  }

  async markDelivered(deviceId: string, version: number): Promise<void> {
    const doc = this.twins.get(deviceId);
    if (doc === undefined || doc.deliveredVersion >= version) return;
    await this.save(deviceId, { ...doc, delivered: structuredClone(doc.desired), deliveredVersion: version });
  }

  /** Resolves once every write so far is on disk (a stop saves twins before the process exits). */
  async flush(): Promise<void> {
    await this.writes;
  }

  close(): void {
    this.storage.stopWriteQueueInterval();
    this.storage.stopExpiredKeysInterval();
  }
}
