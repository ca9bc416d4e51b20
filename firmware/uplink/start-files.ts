import type { UplinkConfig } from './config-types.js';
import type { LoadedProvisioning } from './provisioning/files.js';
import type { TransportConfig } from './transports.js';
import type { EdgeHubIdentity } from './azure-mode.js';
import { loadEdgeHub, readUplinkFiles } from './uplink-files.js';

/**
 * The uplink's credential and configuration files (CA, certificate, key, connection string, `$edgeHub`
 * connection string, DPS's CA and attestation), read once per start and handed to everyone who needs them: the
 * hub (the IoT Hub host and the device scope), the scope broker, the provisioner and the uplink itself. Read
 * several times, a file replaced between two reads would give them different credentials.
 */
export interface UplinkStartFiles {
  /** The transport's options with its files read; null where none are read here (none, sim, DPS). */
  readonly transport: TransportConfig | null;
  /** Edge mode: the `$edgeHub` module identity; undefined in device mode (and with DPS, which sets it up). */
  readonly edgeHub: EdgeHubIdentity | undefined;
  /** DPS (azure `provisioning`): its CA and attestation files; the hub itself is assigned at registration. */
  readonly provisioning?: LoadedProvisioning;
}

export async function loadStartFiles(config: UplinkConfig, gatewayId: string): Promise<UplinkStartFiles> {
  if (config.protocol === 'none' || config.protocol === 'sim') return { transport: null, edgeHub: undefined };
  if (config.protocol === 'azure' && config.provisioning !== undefined) {
    // Imported only with DPS, as the rest of provisioning/ is.
    const { loadProvisioningFiles } = await import('./provisioning/files.js');
    const [provisioning, edgeHub] = await Promise.all([
      loadProvisioningFiles({ ...config, provisioning: config.provisioning }),
      loadEdgeHub(config, gatewayId),
    ]);
    return { transport: null, edgeHub, provisioning };
  }
  return readUplinkFiles(config, gatewayId);
}
