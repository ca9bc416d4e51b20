import type { HubBinding } from './dps-emulator.js';
import type { IotHubEmulator } from './iothub-emulator.js';

/**
 * Lets the DPS emulator create devices on an IoT Hub emulator, as DPS does on the hubs linked to it: through
 * the hub's registry, with the very key a group enrollment derives (DPS creates the device with it).
 */
export function dpsBinding(hub: IotHubEmulator): HubBinding {
  return {
    hostName: hub.hostName,
    register(deviceId, auth, iotEdge) {
      // A re-registration (the device moved back, or DPS re-provisioned it) replaces the identity.
      if (hub.getDevice(deviceId) !== undefined) hub.deleteDevice(deviceId);
      if (auth.kind === 'x509') return void hub.createDevice(deviceId, { type: 'certificateAuthority', iotEdge });
      // An IoT Edge device comes with its $edgeAgent and $edgeHub modules, keys of IoT Hub's own making.
      hub.createDevice(deviceId, { primaryKey: auth.key, secondaryKey: auth.key, iotEdge });
    },
    unregister(deviceId) {
      if (hub.getDevice(deviceId) !== undefined) hub.deleteDevice(deviceId);
    },
  };
}
