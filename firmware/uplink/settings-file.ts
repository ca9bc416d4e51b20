import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * The cloud-pushed settings, kept in the data dir so they hold from the first moment after a restart,
 * before any connect (a gateway that reboots offline must keep the quota the cloud set, not the board's).
 * Written atomically: a temp file, fsynced, renamed over the old one, then the directory fsynced so the
 * rename itself survives a power cut. A reader sees the old document or the new one, never a torn one.
 */

export const SETTINGS_FILE_NAME = 'uplink-settings.json';
const SETTINGS_TEMP_NAME = `${SETTINGS_FILE_NAME}.tmp`;
/** The document is a few dozen bytes; anything this large is not ours. */
const SETTINGS_FILE_BYTES_MAX = 64 * 1024;
const SETTINGS_FORMAT = 1;

export interface SettingsDocument {
  /** The cloud's overrides as last accepted (unvalidated here: the caller validates, as it does the cloud's). */
  overrides: unknown;
  /** Where they came from (`mqtt:<topic>`, `twin`), for status. */
  source: string;
  savedAtWallMs: number;
}

/** The saved document; null when there is none. Throws with the file's path when it cannot be read or parsed. */
export async function loadSettingsFile(dataDir: string): Promise<SettingsDocument | null> {
  const path = join(dataDir, SETTINGS_FILE_NAME);
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`${path}: cannot read saved cloud settings: ${(err as Error).message}`, { cause: err });
  }
  if (bytes.length > SETTINGS_FILE_BYTES_MAX) throw new Error(`${path}: ${bytes.length} bytes is not a settings file`);
  let doc: unknown;
  try {
    doc = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw new Error(`${path}: saved cloud settings are not JSON: ${(err as Error).message}`, { cause: err });
  }
  const d = doc as Partial<SettingsDocument & { format: number }> | null;
  if (d === null || typeof d !== 'object' || d.format !== SETTINGS_FORMAT || typeof d.source !== 'string') {
    throw new Error(`${path}: not a format ${SETTINGS_FORMAT} settings document`);
  }
  return { overrides: d.overrides, source: d.source, savedAtWallMs: Number(d.savedAtWallMs) || 0 };
}

export async function saveSettingsFile(dataDir: string, doc: SettingsDocument): Promise<void> {
  const temp = join(dataDir, SETTINGS_TEMP_NAME);
  const file = await open(temp, 'w', 0o600);
  try {
    await file.writeFile(JSON.stringify({ format: SETTINGS_FORMAT, ...doc }) + '\n');
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(temp, join(dataDir, SETTINGS_FILE_NAME));
  const dir = await open(dataDir, 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
}
