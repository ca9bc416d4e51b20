import type { ConfigNode } from './node.js';
import { fieldsOf, integerOption } from './schema.js';

/** board.json's optional `ota` section: how over-the-air updates of outpost itself are applied. */
export interface OtaConfig {
  /** Time a new release has, from its start, to be READY with the store open and the cloud connected, secs. */
  updateHealthSecs: number;
}

export const OTA_UPDATE_HEALTH_SECS_DEFAULT = 120;

/** A missing section takes every default: updates are checked the same way on every gateway. */
export function parseOta(node: ConfigNode): OtaConfig {
  if (node.missing) return { updateHealthSecs: OTA_UPDATE_HEALTH_SECS_DEFAULT };
  node.keys(fieldsOf('ota'));
  return { updateHealthSecs: integerOption(node.field('updateHealthSecs'), 'ota.updateHealthSecs') };
}
