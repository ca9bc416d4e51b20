import { createHmac } from 'node:crypto';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { loadOrCreateKey, seal, unseal } from '../../seal.js';

/**
 * What DPS assigned, kept in the data directory so that every later boot connects to the hub straight away,
 * offline or not, without asking DPS again (DPS is asked again only when the hub refuses the identity). The
 * device key of the symmetric cases is kept too, sealed (AES-256-GCM, firmware/auth/seal.ts) under a key file
 * of its own: with it the group key file may be removed from a gateway once it is provisioned, and a fleet's
 * group key then lives on no gateway that is already in service.
 */

export const CACHE_FILE_NAME = 'provisioning.json';
const CACHE_TEMP_NAME = `${CACHE_FILE_NAME}.tmp`;
export const CACHE_KEY_FILE_NAME = 'provisioning.key';
const CACHE_FORMAT = 1;
/** The document is a few hundred bytes; anything this large is not ours. */
const CACHE_FILE_BYTES_MAX = 64 * 1024;
const CACHE_FILE_MODE = 0o600;

export interface ProvisionedIdentity {
  /** The enrollment it was obtained with: a cache from another scope or registration id is not used. */
  idScope: string;
  registrationId: string;
  assignedHub: string;
  deviceId: string;
  /** base64 device key (symmetric cases); undefined for X.509, whose certificate files stay where they are. */
  deviceKey: string | undefined;
  provisionedAtWallMs: number;
}

/** The key of a symmetric-key group enrollment's device: base64(HMAC-SHA256(base64decode(groupKey), regId)). */
export function deriveDeviceKey(groupKeyBase64: string, registrationId: string): string {
  return createHmac('sha256', Buffer.from(groupKeyBase64, 'base64')).update(registrationId, 'utf8').digest('base64');
}

/**
 * The cached identity for this enrollment; null when there is none, or when it is for another scope or
 * registration id. A damaged or foreign-sealed file is reported through `onProblem` and treated as absent:
 * the gateway provisions again rather than not starting.
 */
export async function loadIdentity(
  dataDir: string,
  idScope: string,
  registrationId: string,
  onProblem: (err: Error) => void,
): Promise<ProvisionedIdentity | null> {
  const path = join(dataDir, CACHE_FILE_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    onProblem(new Error(`${path}: cannot read the provisioning cache: ${(err as Error).message}`, { cause: err }));
    return null;
  }
  try {
    if (bytes.length > CACHE_FILE_BYTES_MAX) throw new Error(`${bytes.length} bytes is not a provisioning cache`);
    const doc = JSON.parse(bytes.toString('utf8')) as Record<string, unknown>;
    if (doc.format !== CACHE_FORMAT) throw new Error(`not a format ${CACHE_FORMAT} provisioning cache`);
    const text = (field: string) => {
      if (typeof doc[field] !== 'string' || doc[field] === '') throw new Error(`field "${field}" is not a string`);
      return doc[field] as string;
    };
    if (text('idScope') !== idScope || text('registrationId') !== registrationId) return null;
    const sealedKey = doc.sealedDeviceKey;
    const deviceKey =
      typeof sealedKey === 'string'
        ? unseal(await loadOrCreateKey(join(dataDir, CACHE_KEY_FILE_NAME)), registrationId, sealedKey)
        : undefined;
    return {
      idScope,
      registrationId,
      assignedHub: text('assignedHub'),
      deviceId: text('deviceId'),
      deviceKey,
      provisionedAtWallMs: Number(doc.provisionedAtWallMs) || 0,
    };
  } catch (err) {
    onProblem(new Error(`${path}: provisioning cache ignored: ${(err as Error).message}`, { cause: err }));
    return null;
  }
}

/** Atomic: temp file (0600) fsynced, renamed over the old one, the directory fsynced so the rename survives. */
export async function saveIdentity(dataDir: string, identity: ProvisionedIdentity): Promise<void> {
  const { deviceKey, ...rest } = identity;
  const sealedDeviceKey =
    deviceKey === undefined
      ? undefined
      : seal(await loadOrCreateKey(join(dataDir, CACHE_KEY_FILE_NAME)), identity.registrationId, deviceKey);
  const temp = join(dataDir, CACHE_TEMP_NAME);
  await rm(temp, { force: true });
  const file = await open(temp, 'wx', CACHE_FILE_MODE);
  try {
    await file.writeFile(JSON.stringify({ format: CACHE_FORMAT, ...rest, sealedDeviceKey }) + '\n');
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dataDir, CACHE_FILE_NAME));
  const dir = await open(dataDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
