import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { chmod, open, readFile, stat } from 'node:fs/promises';

/**
 * Encryption at rest for device keys: AES-256-GCM with a per-gateway key in a 0600 file made at first start.
 * The device id is the additional authenticated data, so a sealed secret moved to another record fails.
 */

const KEY_BYTES = 32;
/** AES-GCM's 96-bit IV (NIST SP 800-38D's recommended length), random per seal. */
const IV_BYTES = 12;
/** GCM's full 128-bit authentication tag: a truncated tag would weaken the check. */
const TAG_BYTES = 16;
const KEY_FILE_MODE = 0o600;

export class SealError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SealError';
  }
}

/** A key file that exists but cannot be a key (wrong length: truncated, or some other file). */
export class KeyFileError extends SealError {
  constructor(message: string) {
    super(message);
    this.name = 'KeyFileError';
  }
}

/** Reads the key file, creating it (0600, exclusive create) on first start. */
export async function loadOrCreateKey(path: string): Promise<Buffer> {
  try {
    const handle = await open(path, 'wx', KEY_FILE_MODE);
    const key = randomBytes(KEY_BYTES);
    try {
      await handle.writeFile(key);
      await handle.sync();
    } finally {
      await handle.close();
    }
    return key;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new SealError(`cannot create key file ${path}`, { cause: err });
    }
  }
  const key = await readFile(path);
  if (key.length !== KEY_BYTES) {
    throw new KeyFileError(`key file ${path} must hold ${KEY_BYTES} bytes, has ${key.length}`);
  }
  // A copy restored from a backup may come back group-readable; a key others can read protects nothing.
  if (((await stat(path)).mode & 0o777) !== KEY_FILE_MODE) await chmod(path, KEY_FILE_MODE);
  return key;
}

export function seal(key: Buffer, context: string, plaintext: string): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context));
  const body = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
}

export function unseal(key: Buffer, context: string, sealed: string): string {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length < IV_BYTES + TAG_BYTES) throw new SealError(`sealed secret of "${context}" is truncated`);
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, IV_BYTES));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(bytes.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch (err) {
    throw new SealError(`sealed secret of "${context}" fails authentication (wrong key file or tampering)`, {
      cause: err,
    });
  }
}
