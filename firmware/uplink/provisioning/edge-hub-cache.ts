import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadOrCreateKey, seal, unseal } from '../../seal.js';
import { CACHE_KEY_FILE_NAME } from './cache.js';

/**
 * The `$edgeHub` module key the gateway set up on its hub, kept in the data directory sealed (AES-256-GCM,
 * firmware/seal.ts) under the provisioning cache's key file, so a later boot uses it offline. It names the
 * hub and device it was set up for: after a re-provisioning to another hub it is not used, and the module is
 * set up there.
 */

export const EDGE_HUB_CACHE_FILE_NAME = 'edgehub.json';
const EDGE_HUB_CACHE_TEMP_NAME = `${EDGE_HUB_CACHE_FILE_NAME}.tmp`;
const EDGE_HUB_CACHE_FORMAT = 1;
/** The document is a few hundred bytes; anything this large is not ours. */
const EDGE_HUB_CACHE_BYTES_MAX = 64 * 1024;
const EDGE_HUB_CACHE_FILE_MODE = 0o600;

export interface EdgeHubKeyRecord {
  assignedHub: string;
  deviceId: string;
  /** base64 module key (both the primary and the secondary one). */
  key: string;
  setUpAtWallMs: number;
}

/** The seal's context: a key sealed for one hub and device does not open as another's. */
function context(hub: string, deviceId: string): string {
  return `${deviceId}/$edgeHub@${hub}`;
}

/** The sealed key for this hub and device; null when there is none or it is another's. Damage is reported. */
export async function loadEdgeHubKey(
  dataDir: string,
  assignedHub: string,
  deviceId: string,
  onProblem: (err: Error) => void,
): Promise<EdgeHubKeyRecord | null> {
  const path = join(dataDir, EDGE_HUB_CACHE_FILE_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    onProblem(new Error(`${path}: cannot read the $edgeHub key: ${(err as Error).message}`, { cause: err }));
    return null;
  }
  try {
    if (bytes.length > EDGE_HUB_CACHE_BYTES_MAX) throw new Error(`${bytes.length} bytes is not an $edgeHub key file`);
    const doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    if (doc.format !== EDGE_HUB_CACHE_FORMAT)
      throw new Error(`not a format ${EDGE_HUB_CACHE_FORMAT} $edgeHub key file`);
    if (doc.assignedHub !== assignedHub || doc.deviceId !== deviceId) return null;
    if (typeof doc.sealedKey !== 'string') throw new Error('field "sealedKey" is not a string');
    const sealKey = await loadOrCreateKey(join(dataDir, CACHE_KEY_FILE_NAME));
    const key = unseal(sealKey, context(assignedHub, deviceId), doc.sealedKey);
    return { assignedHub, deviceId, key, setUpAtWallMs: Number(doc.setUpAtWallMs) || 0 };
  } catch (err) {
    onProblem(new Error(`${path}: $edgeHub key ignored: ${(err as Error).message}`, { cause: err }));
    return null;
  }
}

/** Atomic: temp file (0600) fsynced, renamed over the old one, the directory fsynced. */
export async function saveEdgeHubKey(dataDir: string, record: EdgeHubKeyRecord): Promise<void> {
  const sealKey = await loadOrCreateKey(join(dataDir, CACHE_KEY_FILE_NAME));
  const sealedKey = seal(sealKey, context(record.assignedHub, record.deviceId), record.key);
  const { key: _key, ...rest } = record;
  const temp = join(dataDir, EDGE_HUB_CACHE_TEMP_NAME);
  await rm(temp, { force: true });
  const file = await open(temp, 'wx', EDGE_HUB_CACHE_FILE_MODE);
  try {
    await file.writeFile(JSON.stringify({ format: EDGE_HUB_CACHE_FORMAT, ...rest, sealedKey }) + '\n');
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dataDir, EDGE_HUB_CACHE_FILE_NAME));
  const dir = await open(dataDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
