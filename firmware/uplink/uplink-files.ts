import type { EdgeHubIdentity } from './azure-mode.js';
import { loadEdgeHub, readUplinkFiles, type UplinkConfig } from './config.js';
import type { TransportConfig } from './transports.js';

/**
 * The uplink's credential and configuration files (CA, certificate, key, connection string, `$edgeHub`
 * connection string), read once per start and handed to everyone who needs them: the hub (the IoT Hub host
 * and the device scope), the scope broker and the uplink itself. Read several times, a file replaced between
 * two reads would give them different credentials.
 */
export interface UplinkStartFiles {
  /** The transport's options with its files read; null where none are read here (none, sim, DPS). */
  readonly transport: TransportConfig | null;
  /** Edge mode: the `$edgeHub` module identity; undefined in device mode. */
  readonly edgeHub: EdgeHubIdentity | undefined;
}

export async function loadStartFiles(config: UplinkConfig, gatewayId: string): Promise<UplinkStartFiles> {
  if (config.protocol === 'none' || config.protocol === 'sim') return { transport: null, edgeHub: undefined };
  // DPS reads its own files (firmware/uplink/provisioning): the hub is assigned at registration.
  if (config.protocol === 'azure' && config.provisioning !== undefined)
    return { transport: null, edgeHub: await loadEdgeHub(config, gatewayId) };
  return readUplinkFiles(config, gatewayId);
}
