import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import nodePersist from 'node-persist';
import { SCOPE_IDENTITIES_MAX, type AuthSpec, type Identity, type ScopeDocument } from './identity.js';
import { loadOrCreateKey, seal, unseal } from './seal.js';

/**
 * The identity cache: every child this gateway may authenticate, as the last scope sync left it. Lives in
 * memory for lookups and in node-persist files under `<dataDir>/identities` so children keep authenticating
 * across restarts with the cloud unreachable. Device secrets are sealed (AES-256-GCM) before they hit disk.
 *
 * node-persist writes a file in place; a power cut mid-write can tear one record, which then reads as absent
 * (forgiveParseErrors) until the next sync rewrites it — one device refused, never a gateway that won't start.
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
  syncedAtWallMs: number;
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

export class IdentityCache {
  private readonly identities = new Map<string, Identity>();
  private meta: StoredMeta = { scopeVersion: -1, hubHostName: null, trustBundle: null, syncedAtWallMs: 0 };
  private readonly revokeListeners = new Set<(deviceIds: string[]) => void>();

  private constructor(
    private readonly storage: ReturnType<typeof nodePersist.create>,
    private readonly key: Buffer,
  ) {}

  static async open(dataDir: string): Promise<IdentityCache> {
    // 0700: the sealed records are safe anywhere, but the key file beside them is the whole secret.
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const key = await loadOrCreateKey(path.join(dataDir, KEY_FILE_NAME));
    const storage = nodePersist.create({ dir: path.join(dataDir, 'identities'), writeQueue: false, expiredInterval: false, forgiveParseErrors: true });
    await storage.init();
    const cache = new IdentityCache(storage, key);
    await cache.load();
    return cache;
  }

  private async load(): Promise<void> {
    const meta = (await this.storage.getItem(META_KEY)) as StoredMeta | undefined;
    if (meta !== undefined) this.meta = meta;
    for (const key of await this.storage.keys()) {
      if (!key.startsWith(DEVICE_KEY_PREFIX) || this.identities.size >= SCOPE_IDENTITIES_MAX) continue;
      const stored = (await this.storage.getItem(key)) as StoredIdentity | undefined;
      if (stored === undefined) continue;
      const auth = JSON.parse(unseal(this.key, stored.deviceId, stored.sealedAuth)) as AuthSpec;
      this.identities.set(stored.deviceId, { deviceId: stored.deviceId, parent: stored.parent, status: stored.status, version: stored.version, auth });
    }
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
      if (current !== undefined && (identity.status === 'disabled' || JSON.stringify(current.auth) !== JSON.stringify(identity.auth))) {
        if (current.status === 'enabled') change.revoked.push(identity.deviceId);
      }
    }
    this.meta = { scopeVersion: doc.version, hubHostName: doc.hubHostName, trustBundle: doc.trustBundle, syncedAtWallMs: nowWallMs };
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
