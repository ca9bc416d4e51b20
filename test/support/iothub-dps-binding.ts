import type { HubBinding } from './dps-emulator.js';
import type { IotHubEmulator } from './iothub-emulator.js';

/**
 * Lets the DPS emulator create devices on an IoT Hub emulator, as DPS does on the hubs linked to it. A
 * group enrollment's device key is derived, not random, so the hub must take that very key: the IoT Hub
 * emulator only hands out random ones, and its key table is private. Until it has a registry API of its
 * own, the table is reached here, and a change to it fails loudly rather than authenticating nobody.
 */
export function dpsBinding(hub: IotHubEmulator): HubBinding {
  const keys = (hub as unknown as { keys?: unknown }).keys;
  if (!(keys instanceof Map)) {
    throw new Error('IotHubEmulator no longer keeps its device keys in `keys`: update iothub-dps-binding.ts');
  }
  return {
    hostName: hub.hostName,
    register(deviceId, auth) {
      if (auth.kind === 'x509') return void hub.addX509Device(deviceId);
      hub.addDevice(deviceId);
      keys.set(deviceId, auth.key);
    },
    unregister(deviceId) {
      keys.delete(deviceId);
      hub.disconnect(deviceId);
    },
  };
}
