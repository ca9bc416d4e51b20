import { ConfigError } from '../../config/errors.js';
import type { AzureUplinkConfig } from '../config.js';
import { PEM_FILE_BYTES_MAX, readNamedFile } from '../uplink-files.js';
import type { ProvisioningConfig } from './config.js';

/** The enrollment's secrets as read from the files board.json names. */
export type LoadedAttestation =
  { kind: 'group-key' | 'symmetric-key'; keyBase64: string } | { kind: 'x509'; cert: string; key: string };

export interface LoadedProvisioning {
  config: ProvisioningConfig;
  attestation: LoadedAttestation;
  /** uplink.caFile: the roots for DPS and for the hub it assigns (both are Azure endpoints). */
  ca: string | undefined;
}

export type ProvisionedUplinkConfig = AzureUplinkConfig & { provisioning: ProvisioningConfig };

/** A key file holds one base64 key (DPS's are 64 bytes: 88 characters); a few KiB is already not one. */
const KEY_FILE_BYTES_MAX = 4 * 1024;
/** DPS and IoT Hub take keys of 16 to 64 bytes. */
const KEY_BYTES_MIN = 16;
const KEY_BYTES_MAX = 64;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** Reads uplink.caFile and the attestation files; every failure names the field and the file. */
export async function loadProvisioningFiles(config: ProvisionedUplinkConfig): Promise<LoadedProvisioning> {
  const dps = config.provisioning;
  const ca =
    config.caFile === undefined
      ? undefined
      : await readNamedFile(config, 'caFile', config.caFile, PEM_FILE_BYTES_MAX, 'PEM');
  const a = dps.attestation;
  if (a.kind === 'x509') {
    const [cert, key] = await Promise.all([
      readNamedFile(config, 'provisioning.certPath', a.certFile, PEM_FILE_BYTES_MAX, 'PEM'),
      readNamedFile(config, 'provisioning.keyPath', a.keyFile, PEM_FILE_BYTES_MAX, 'PEM'),
    ]);
    return { config: dps, ca, attestation: { kind: 'x509', cert, key } };
  }
  const field = a.kind === 'group-key' ? 'groupKeyFile' : 'symmetricKeyFile';
  const text = (
    await readNamedFile(config, `provisioning.${field}`, a.keyFile, KEY_FILE_BYTES_MAX, 'a base64 key')
  ).trim();
  const bytes = BASE64.test(text) ? Buffer.from(text, 'base64').length : 0;
  if (bytes < KEY_BYTES_MIN || bytes > KEY_BYTES_MAX) {
    const where = { file: config.boardFile, jsonPath: `$.uplink.provisioning.${field}` };
    throw new ConfigError(
      'INVALID',
      where,
      `a file holding one base64 key of ${KEY_BYTES_MIN} to ${KEY_BYTES_MAX} ` + 'bytes',
      `${a.keyFile}: ${bytes === 0 ? 'not base64' : `${bytes} bytes`}`,
    );
  }
  return { config: dps, ca, attestation: { kind: a.kind, keyBase64: text } };
}
