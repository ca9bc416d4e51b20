import { childPath } from './config/node.js';
import type { LoadedBoard } from './config/types.js';
import type { UplinkConfig } from './uplink/config.js';

/**
 * The gateway's own devices (board.json's drivers) and the IoT Hub identity they go up as: the gateway's
 * (cloudIdentity "gateway", the default) or their own device id (cloudIdentity "own", edge mode only).
 */

/** The code of the start-up warning for cloudIdentity "own" outside edge mode (process 'warning' listeners). */
export const CLOUD_IDENTITY_UNUSED_WARNING = 'OUTPOST_CLOUD_IDENTITY_UNUSED';

/**
 * The drivers that go up as the gateway, disabled ones too: their records still in a lane (or dead-lettered)
 * from an earlier start go as the gateway as well.
 */
export function gatewayDevicesOf(board: LoadedBoard): Set<string> {
  return new Set(board.devices.filter((device) => device.cloudIdentity !== 'own').map((device) => device.id));
}

/**
 * A driver's reading is marked as the gateway's own (RECORD_KEY.gatewayDevice) unless it has an identity of
 * its own: unmarked, edge mode sends it as its device id.
 */
export function marksAsGateway(board: LoadedBoard): (deviceId: string) => boolean {
  const own = new Set(board.devices.filter((device) => device.cloudIdentity === 'own').map((device) => device.id));
  return (deviceId) => !own.has(deviceId);
}

/**
 * cloudIdentity "own" means something only to the azure uplink in edge mode, which opens a connection per
 * identity; elsewhere everything goes on the gateway's one connection, named in `outpost-device-id`. Said at
 * start, naming the file and field, so an operator who expected a device identity in IoT Hub knows why.
 */
export function warnUnusedCloudIdentity(board: LoadedBoard, config: UplinkConfig): void {
  if (config.protocol === 'azure' && config.azure.mode === 'edge') return;
  const uplink = config.protocol === 'azure' ? 'the azure uplink in device mode' : `protocol "${config.protocol}"`;
  for (const device of board.devices) {
    if (device.cloudIdentity !== 'own') continue;
    const field = childPath(childPath('$.devices', device.id), 'cloudIdentity');
    process.emitWarning(
      `${device.cloudIdentityFile}: ${field}: "own" applies in edge mode only (uplink.azure.mode "edge"); ` +
        `with ${uplink} it changes nothing: the readings of "${device.id}" are the gateway's, ` +
        'named in outpost-device-id',
      { code: CLOUD_IDENTITY_UNUSED_WARNING },
    );
  }
}
