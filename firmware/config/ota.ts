import { isAbsolute, resolve } from 'node:path';
import type { ConfigNode } from './node.js';
import { fieldsOf, integerOption, optionSpec } from './schema.js';

/** board.json's optional `ota` section: how over-the-air updates of outpost itself are applied. */
export interface OtaConfig {
  /** Time a new release has, from its start, to be READY with the store open and the cloud connected, secs. */
  updateHealthSecs: number;
  /** Largest artifact downloaded, bytes. */
  downloadBytesMax: number;
  /** Absolute path of the CA bundle for the artifact's host; undefined keeps Node's roots. */
  caFile?: string;
}

/** The schema table's defaults (firmware/config/schema-board.ts), for a board without an `ota` section. */
export const OTA_UPDATE_HEALTH_SECS_DEFAULT = optionSpec('ota.updateHealthSecs').int!.default!;
/** Three times a release's 30-45 MB, so a bigger release does not need every board changed first. */
export const OTA_DOWNLOAD_BYTES_MAX_DEFAULT = optionSpec('ota.downloadBytesMax').int!.default!;
/** What a board without an `ota` section gets (and a board built by hand in a test). */
export const OTA_DEFAULTS: Readonly<OtaConfig> = {
  updateHealthSecs: OTA_UPDATE_HEALTH_SECS_DEFAULT,
  downloadBytesMax: OTA_DOWNLOAD_BYTES_MAX_DEFAULT,
};

/** A missing section takes every default: updates are checked the same way on every gateway. */
export function parseOta(node: ConfigNode, boardDir = '.'): OtaConfig {
  if (node.missing) return { ...OTA_DEFAULTS };
  node.keys(fieldsOf('ota'));
  const caFile = node.field('caFile').optionalString();
  return {
    updateHealthSecs: integerOption(node.field('updateHealthSecs'), 'ota.updateHealthSecs'),
    downloadBytesMax: integerOption(node.field('downloadBytesMax'), 'ota.downloadBytesMax'),
    ...(caFile === undefined ? {} : { caFile: isAbsolute(caFile) ? caFile : resolve(boardDir, caFile) }),
  };
}
