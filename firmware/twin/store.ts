import { chmod, mkdir } from 'node:fs/promises';
import path from 'node:path';
import nodePersist from 'node-persist';
import { SCOPE_IDENTITIES_MAX } from '../auth/identity.js';
import {
  TWIN_PENDING_BYTES_MAX,
  TWIN_SECTION_BYTES_MAX,
  applyPatch,
  diff,
  foldPatch,
  withoutIdleDeletes,
  withoutMetadata,
  type Props,
} from './merge.js';

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

/** Twins kept: one per identity a scope may hold (devices and modules each have one) plus the gateway's. */
export const TWINS_MAX = SCOPE_IDENTITIES_MAX + 1;
/**
 * Disk the twin documents may take together (as node-persist writes them), bytes. The data partition is shared
 * with the ring log's quota; 16 MiB holds a full scope of 1,000 twins at 16 KiB each, and keeps a few children
 * with maximal twins (four 32 KiB sections each) from filling the card. Only children's patches are refused
 * past it: the cloud's desired state is always taken.
 */
export const TWIN_STORE_BYTES_MAX = 16 * 1024 * 1024;
/** What node-persist adds around a document: `{"key":...,"value":...}` plus the id, bytes. */
const RECORD_OVERHEAD_BYTES = 300;

/** Why a child's reported patch was refused; counted in `TwinStore.refusals`. */
export type TwinRefusal = 'too-large' | 'disk-budget' | 'twins-max';

export class TwinError extends Error {
  constructor(
    readonly code: TwinRefusal,
    message: string,
  ) {
    super(message);
    this.name = 'TwinError';
  }
}

const emptyTwin = (): TwinDoc => ({
  desired: {},
  desiredVersion: 0,
  reported: {},
  reportedVersion: 1,
  pending: null,
  pendingGeneration: 0,
  delivered: {},
  deliveredVersion: 0,
});

export class TwinStore {
  private readonly twins = new Map<string, TwinDoc>();
  /** Writes go out one at a time, each with the latest doc, so an older one can never land last. */
  private writes: Promise<unknown> = Promise.resolve();
  private readonly reportedListeners = new Set<(deviceId: string) => void>();
  /** Bytes each twin takes on disk, and their sum, for the disk budget. */
  private readonly sizes = new Map<string, number>();
  private totalBytes = 0;
  readonly refusals = new Map<TwinRefusal, number>();

  private constructor(
    private readonly storage: ReturnType<typeof nodePersist.create>,
    private readonly storeBytesMax: number,
  ) {}

  /** `storeBytesMax`: the disk budget, bytes; default TWIN_STORE_BYTES_MAX. */
  static async open(dataDir: string, opts: { storeBytesMax?: number } = {}): Promise<TwinStore> {
    // node-persist makes its directory with the process umask (0755 outside systemd); twins hold device state.
    await mkdir(path.join(dataDir, 'twins'), { recursive: true, mode: 0o700 });
    await chmod(path.join(dataDir, 'twins'), 0o700);
    const storage = nodePersist.create({
      dir: path.join(dataDir, 'twins'),
      writeQueue: false,
      expiredInterval: false,
      forgiveParseErrors: true,
    });
    await storage.init();
    const store = new TwinStore(storage, opts.storeBytesMax ?? TWIN_STORE_BYTES_MAX);
    for (const key of await storage.keys()) {
      const doc = (await storage.getItem(key)) as TwinDoc | undefined;
      if (doc !== undefined && store.twins.size < TWINS_MAX) {
        store.twins.set(key, doc);
        store.account(key, doc);
      }
    }
    return store;
  }

  get(deviceId: string): TwinDoc {
    return this.twins.get(deviceId) ?? emptyTwin();
  }

  devices(): string[] {
    return [...this.twins.keys()];
  }

  /** Bytes all twins take on disk. */
  get bytes(): number {
    return this.totalBytes;
  }

  private recordBytes(deviceId: string, doc: TwinDoc): number {
    return Buffer.byteLength(JSON.stringify(doc)) + deviceId.length + RECORD_OVERHEAD_BYTES;
  }

  private account(deviceId: string, doc: TwinDoc): void {
    const bytes = this.recordBytes(deviceId, doc);
    this.totalBytes += bytes - (this.sizes.get(deviceId) ?? 0);
    this.sizes.set(deviceId, bytes);
  }

  private refuse(code: TwinRefusal, message: string): never {
    this.refusals.set(code, (this.refusals.get(code) ?? 0) + 1);
    throw new TwinError(code, message);
  }

  private async save(deviceId: string, doc: TwinDoc): Promise<void> {
    if (!this.twins.has(deviceId) && this.twins.size >= TWINS_MAX) {
      this.refuse('twins-max', `twin store full (${TWINS_MAX} devices, "TWINS_MAX")`);
    }
    this.twins.set(deviceId, doc);
    this.account(deviceId, doc);
    const write = this.writes.then(() => this.storage.setItem(deviceId, this.twins.get(deviceId)));
    this.writes = write.catch(() => {});
    await write;
  }

  /**
   * A child's (or the gateway's) reported patch: applied locally and queued for the cloud. Returns the new
   * version. A patch that changes nothing (deletes of absent keys only) is answered without a write.
   * Refused with a TwinError past the section, pending or disk limits; nothing is changed then.
   */
  async patchReported(deviceId: string, patch: Props): Promise<number> {
    const doc = structuredClone(this.get(deviceId));
    const effective = withoutIdleDeletes(patch, doc.reported);
    if (Object.keys(effective).length === 0) return doc.reportedVersion;
    applyPatch(doc.reported, effective);
    if (Buffer.byteLength(JSON.stringify(doc.reported)) > TWIN_SECTION_BYTES_MAX) {
      this.refuse('too-large', `reported properties of "${deviceId}" would exceed ${TWIN_SECTION_BYTES_MAX} bytes`);
    }
    doc.pending ??= {};
    foldPatch(doc.pending, effective);
    if (Buffer.byteLength(JSON.stringify(doc.pending)) > TWIN_PENDING_BYTES_MAX) {
      this.refuse(
        'too-large',
        `reported changes of "${deviceId}" waiting for the cloud would exceed ` +
          `${TWIN_PENDING_BYTES_MAX} bytes ("TWIN_PENDING_BYTES_MAX")`,
      );
    }
    const grownBytes = this.recordBytes(deviceId, doc) - (this.sizes.get(deviceId) ?? 0);
    if (grownBytes > 0 && this.totalBytes + grownBytes > this.storeBytesMax) {
      this.refuse(
        'disk-budget',
        `twin store would exceed its disk budget of ${this.storeBytesMax} bytes ` + '("TWIN_STORE_BYTES_MAX")',
      );
    }
    doc.pendingGeneration += 1;
    doc.reportedVersion += 1;
    await this.save(deviceId, doc);
    for (const listener of this.reportedListeners) listener(deviceId);
    return doc.reportedVersion;
  }

  /** Called after each reported patch is saved (a sync pushes it while the link is up); returns an unsubscribe. */
  onReported(listener: (deviceId: string) => void): () => void {
    this.reportedListeners.add(listener);
    return () => void this.reportedListeners.delete(listener);
  }

  /** Pending reported patches, with the generation to pass to `pushed` once the cloud accepted them. */
  pending(): Array<{ deviceId: string; patch: Props; generation: number }> {
    const out = [];
    for (const [deviceId, doc] of this.twins) {
      if (doc.pending !== null)
        out.push({ deviceId, patch: structuredClone(doc.pending), generation: doc.pendingGeneration });
    }
    return out;
  }

  /** One twin's pending reported patch, as `pending()` gives it; null when in step with the cloud. */
  pendingOf(deviceId: string): { patch: Props; generation: number } | null {
    const doc = this.twins.get(deviceId);
    if (doc === undefined || doc.pending === null) return null;
    return { patch: structuredClone(doc.pending), generation: doc.pendingGeneration };
  }

  /**
   * The cloud's reported section and its $version (edge mode: the device's own twin), taken while nothing is
   * pending, so that the cache answers offline what IoT Hub answers online and versions continue from there.
   * IoT Hub's is taken even when lower: patches folded while offline went up as one.
   */
  async adoptReported(deviceId: string, reported: Props, version: number): Promise<void> {
    const doc = this.get(deviceId);
    if (doc.pending !== null) return;
    const section = withoutMetadata(reported);
    if (version === doc.reportedVersion && JSON.stringify(section) === JSON.stringify(doc.reported)) return;
    await this.save(deviceId, { ...doc, reported: section, reportedVersion: version });
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

  /**
   * The device's twin in IoT Hub was made anew (deleted and created again, or first read after device mode's
   * gateway-twin versions): its $version starts again at 1. The versions restart here too; the content last
   * delivered stays, so the child is sent the difference to the new twin.
   */
  async restartDesiredVersions(deviceId: string): Promise<void> {
    const doc = this.twins.get(deviceId);
    if (doc === undefined) return;
    await this.save(deviceId, { ...doc, desiredVersion: 0, deliveredVersion: 0 });
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
