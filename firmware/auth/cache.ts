import { chmod, mkdir, rename } from 'node:fs/promises';
import path from 'node:path';
import nodePersist from 'node-persist';
import { SCOPE_IDENTITIES_MAX, type AuthSpec, type Identity, type ScopeDocument } from './identity.js';
import { KeyFileError, loadOrCreateKey, seal, unseal } from '../seal.js';

/**
 * The identity cache: every child this gateway may authenticate, as the last scope sync left it. Lives in
 * memory for lookups and in node-persist files under `<dataDir>/identities` so children keep authenticating
 * across restarts with the cloud unreachable. Device secrets are sealed (AES-256-GCM) before they hit disk.
 *
 * node-persist writes a file in place; a power cut mid-write can tear one record, which then reads as absent
 * (forgiveParseErrors) until the next sync rewrites it — one device refused, never a gateway that won't start.
 * Likewise a record that parses but fails to unseal (bit rot, tampering) is skipped and reported. A cache
 * whose key file is gone or replaced (a backup restored without it) cannot be read at all: it is dropped and
 * refilled by the next scope sync, since refusing to start would leave every child locked out for good.
 */

interface StoredIdentity {
  deviceId: string;
  parent: string;
  status: Identity['status'];
  version: number;
  sealedAuth: string;
}

interface StoredMeta {
  scopeVersion: number;
  hubHostName: string | null;
  trustBundle: string | null;
  /** Absent in caches written before it existed: false. */
  thumbprintSha1?: boolean;
  syncedAtWallMs: number;
  /** A known text sealed with the key the records were sealed with: tells a replaced key file from rot. */
  keyCheck?: string;
}

export interface ScopeChange {
  added: string[];
  updated: string[];
  /** Removed or disabled: their live connections must drop. */
  revoked: string[];
}

const META_KEY = 'meta';
const DEVICE_KEY_PREFIX = 'device:';
export const KEY_FILE_NAME = 'identity.key';
const KEY_CHECK_CONTEXT = 'outpost-key-check';
const KEY_CHECK_TEXT = 'outpost identity key';
const EMPTY_META: StoredMeta = { scopeVersion: -1, hubHostName: null, trustBundle: null, syncedAtWallMs: 0 };
/** Damaged records named in one load report; the count is always exact. */
const DAMAGED_NAMED_MAX = 10;

/** What went wrong reading the cache at start; the gateway starts anyway. */
export interface CacheLoadReport {
  /** Device records skipped because they failed to parse or unseal. */
  damaged: number;
  /** True when the key file did not match the records (missing, replaced): the cache was dropped. */
  keyMismatch: boolean;
}

/** A damaged key file is moved aside (kept for forensics) and replaced; the records it sealed are dropped. */
async function openKey(keyPath: string, onProblem: (err: Error) => void): Promise<Buffer> {
  try {
    return await loadOrCreateKey(keyPath);
  } catch (err) {
    if (!(err instanceof KeyFileError)) throw err;
    await rename(keyPath, `${keyPath}.damaged`);
    onProblem(new Error(`${err.message}: moved to ${keyPath}.damaged, a new key made`));
    return loadOrCreateKey(keyPath);
  }
}

export class IdentityCache {
  private readonly identities = new Map<string, Identity>();
  private meta: StoredMeta = { ...EMPTY_META };
  private readonly revokeListeners = new Set<(deviceIds: string[]) => void>();
  private readonly damagedNames: string[] = [];

  private constructor(
    private readonly storage: ReturnType<typeof nodePersist.create>,
    private readonly key: Buffer,
  ) {}

  /** `onProblem` hears about damaged records and a dropped cache (logged by the hub); they never fail the open. */
  static async open(dataDir: string, onProblem: (err: Error) => void = () => {}): Promise<IdentityCache> {
    // 0700: the sealed records are safe anywhere, but the key file beside them is the whole secret.
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const key = await openKey(path.join(dataDir, KEY_FILE_NAME), onProblem);
    // node-persist makes its directory with the process umask (0755 outside systemd); records name devices.
    await mkdir(path.join(dataDir, 'identities'), { recursive: true, mode: 0o700 });
    await chmod(path.join(dataDir, 'identities'), 0o700);
    const storage = nodePersist.create({
      dir: path.join(dataDir, 'identities'),
      writeQueue: false,
      expiredInterval: false,
      forgiveParseErrors: true,
    });
    await storage.init();
    const cache = new IdentityCache(storage, key);
    const where = path.join(dataDir, 'identities');
    const report = await cache.load();
    if (report.keyMismatch) {
      onProblem(
        new Error(
          `${where}: sealed with another key than ${path.join(dataDir, KEY_FILE_NAME)} ` +
            '(key file missing or replaced): identity cache dropped, it refills at the next scope sync',
        ),
      );
    } else if (report.damaged > 0) {
      const names = cache.damagedNames.join(', ');
      onProblem(
        new Error(
          `${where}: ${report.damaged} damaged identity record(s) skipped (${names}); ` +
            'those devices are refused until the next scope sync rewrites them',
        ),
      );
    }
    return cache;
  }

  private async load(): Promise<CacheLoadReport> {
    const meta = (await this.storage.getItem(META_KEY)) as StoredMeta | undefined;
    if (meta !== undefined && !this.keyMatches(meta)) return { damaged: 0, keyMismatch: await this.drop() };
    if (meta !== undefined) this.meta = meta;
    let damaged = 0;
    let loaded = 0;
    for (const key of await this.storage.keys()) {
      if (!key.startsWith(DEVICE_KEY_PREFIX) || this.identities.size >= SCOPE_IDENTITIES_MAX) continue;
      const identity = this.readRecord((await this.storage.getItem(key)) as StoredIdentity | undefined);
      if (identity === null) {
        damaged += 1;
        if (this.damagedNames.length < DAMAGED_NAMED_MAX) this.damagedNames.push(key.slice(DEVICE_KEY_PREFIX.length));
        continue;
      }
      this.identities.set(identity.deviceId, identity);
      loaded += 1;
    }
    // A cache from before the key check: nothing unsealing at all means the key, not the records.
    const nothingUnsealed = damaged > 0 && loaded === 0;
    if (meta?.keyCheck === undefined && nothingUnsealed) return { damaged: 0, keyMismatch: await this.drop() };
    return { damaged, keyMismatch: false };
  }

  private keyMatches(meta: StoredMeta): boolean {
    if (meta.keyCheck === undefined) return true;
    try {
      return unseal(this.key, KEY_CHECK_CONTEXT, meta.keyCheck) === KEY_CHECK_TEXT;
    } catch {
      return false;
    }
  }

  /** Null for a record torn, edited or sealed under another key. */
  private readRecord(stored: StoredIdentity | undefined): Identity | null {
    if (stored === undefined || typeof stored !== 'object' || stored === null) return null;
    const { deviceId, parent, status, version, sealedAuth } = stored;
    if (typeof deviceId !== 'string' || typeof sealedAuth !== 'string' || typeof parent !== 'string') return null;
    if ((status !== 'enabled' && status !== 'disabled') || !Number.isSafeInteger(version)) return null;
    try {
      const auth = JSON.parse(unseal(this.key, deviceId, sealedAuth)) as AuthSpec;
      return { deviceId, parent, status, version, auth };
    } catch {
      return null;
    }
  }

  /** Forgets every record and the scope version, so the next sync's document applies whatever its version. */
  private async drop(): Promise<true> {
    this.identities.clear();
    for (const key of await this.storage.keys()) await this.storage.removeItem(key);
    this.meta = { ...EMPTY_META };
    return true;
  }

  get(deviceId: string): Identity | undefined {
    return this.identities.get(deviceId);
  }

  get size(): number {
    return this.identities.size;
  }

  get scopeVersion(): number {
    return this.meta.scopeVersion;
  }

  get hubHostName(): string | null {
    return this.meta.hubHostName;
  }

  get trustBundle(): string | null {
    return this.meta.trustBundle;
  }

  get thumbprintSha1(): boolean {
    return this.meta.thumbprintSha1 === true;
  }

  /** Called with the ids whose access was just withdrawn (removed or disabled). */
  onRevoked(listener: (deviceIds: string[]) => void): () => void {
    this.revokeListeners.add(listener);
    return () => this.revokeListeners.delete(listener);
  }

  /** Replaces the cache with the document's scope; an older document than the cache is ignored (returns null). */
  async applyScope(doc: ScopeDocument, nowWallMs: number): Promise<ScopeChange | null> {
    if (doc.version < this.meta.scopeVersion) return null;
    const change: ScopeChange = { added: [], updated: [], revoked: [] };
    const incoming = new Map(doc.devices.map((d) => [d.deviceId, d]));
    for (const [deviceId, current] of this.identities) {
      if (incoming.has(deviceId)) continue;
      await this.storage.removeItem(DEVICE_KEY_PREFIX + deviceId);
      this.identities.delete(deviceId);
      if (current.status === 'enabled') change.revoked.push(deviceId);
    }
    for (const identity of doc.devices) {
      const current = this.identities.get(identity.deviceId);
      if (current !== undefined && JSON.stringify(current) === JSON.stringify(identity)) continue;
      await this.persist(identity);
      this.identities.set(identity.deviceId, identity);
      (current === undefined ? change.added : change.updated).push(identity.deviceId);
      // A changed key or certificate also ends the sessions made with the old one.
      if (
        current !== undefined &&
        (identity.status === 'disabled' || JSON.stringify(current.auth) !== JSON.stringify(identity.auth))
      ) {
        if (current.status === 'enabled') change.revoked.push(identity.deviceId);
      }
    }
    this.meta = {
      scopeVersion: doc.version,
      hubHostName: doc.hubHostName,
      trustBundle: doc.trustBundle,
      thumbprintSha1: doc.thumbprintSha1,
      syncedAtWallMs: nowWallMs,
      keyCheck: seal(this.key, KEY_CHECK_CONTEXT, KEY_CHECK_TEXT),
    };
    await this.storage.setItem(META_KEY, this.meta);
    if (change.revoked.length > 0) for (const listener of this.revokeListeners) listener(change.revoked);
    return change;
  }

  private async persist(identity: Identity): Promise<void> {
    const stored: StoredIdentity = {
      deviceId: identity.deviceId,
      parent: identity.parent,
      status: identity.status,
      version: identity.version,
      sealedAuth: seal(this.key, identity.deviceId, JSON.stringify(identity.auth)),
    };
    await this.storage.setItem(DEVICE_KEY_PREFIX + identity.deviceId, stored);
  }

  close(): void {
    this.storage.stopWriteQueueInterval();
    this.storage.stopExpiredKeysInterval();
  }
}
