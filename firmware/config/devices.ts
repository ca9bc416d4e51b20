import type { ConfigNode } from './node.js';
import type { BusConfig, BusKind, DeviceConfig } from './types.js';
import { DEVICE_ID_PATTERN } from '../device-id.js';

export { DEVICE_ID_PATTERN };

/** Faster polling than this buys nothing from these sensors (a BME280 forced measurement alone takes ~10 ms)
 * and would fill the log quickly. */
export const POLL_INTERVAL_MS_MIN = 100;
export const POLL_INTERVAL_MS_MAX = 86_400_000;

const COMMON_FIELDS = ['compatible', 'bus', 'status', 'label', 'cloudIdentity'];

/** What a device's readings go up to IoT Hub as, in edge mode (DeviceConfig.cloudIdentity). */
export const CLOUD_IDENTITIES = ['gateway', 'own'] as const;

/**
 * What validating a device entry needs from its driver: the rest of a driver (create, the bus handles) is
 * drivers/' own. Drivers are handed in (drivers/registry.ts's DRIVERS satisfies this) rather than imported,
 * so the board schema sits below drivers/, which read their settings with its ConfigNode.
 */
export interface DeviceSchema {
  busKind: BusKind;
  /** Present for polled drivers: the device then takes `pollIntervalMs`. */
  pollIntervalMsDefault?: number;
  settingsFields: readonly string[];
  parseSettings(node: ConfigNode): unknown;
  /** Bus resources (pins, addresses) the device holds exclusively, given its settings. */
  claims(settings: unknown): string[];
}

/** Device schemas by `compatible`. */
export type DeviceSchemas = ReadonlyMap<string, DeviceSchema>;

export function parseDevices(
  node: ConfigNode,
  buses: Record<string, BusConfig>,
  drivers: DeviceSchemas,
): DeviceConfig[] {
  const devices: DeviceConfig[] = [];
  const claimed = new Map<string, string>();
  for (const id of node.keys()) {
    const deviceNode = node.field(id);
    if (!DEVICE_ID_PATTERN.test(id)) deviceNode.fail("a device id of at most 128 letters, digits or -.%_*?!(),:=@$'");
    const device = parseDevice(id, deviceNode, buses, drivers);
    devices.push(device);
    if (device.status !== 'okay') continue;
    const driver = drivers.get(device.compatible) as DeviceSchema;
    for (const claim of driver.claims(device.settings)) {
      const key = `${device.bus}/${claim}`;
      const holder = claimed.get(key);
      if (holder !== undefined)
        deviceNode.fail(`a device not sharing ${claim} on bus "${device.bus}" with device "${holder}"`);
      claimed.set(key, id);
    }
  }
  return devices;
}

function parseDevice(
  id: string,
  node: ConfigNode,
  buses: Record<string, BusConfig>,
  drivers: DeviceSchemas,
): DeviceConfig {
  const compatible = node.field('compatible').oneOf([...drivers.keys()]);
  const driver = drivers.get(compatible) as DeviceSchema;
  const polled = driver.pollIntervalMsDefault !== undefined;
  node.keys([...COMMON_FIELDS, ...(polled ? ['pollIntervalMs'] : []), ...driver.settingsFields]);
  const busNode = node.field('bus');
  const busId = busNode.string();
  const bus = buses[busId];
  if (!bus || bus.kind !== driver.busKind) {
    const candidates = Object.values(buses)
      .filter((b) => b.kind === driver.busKind)
      .map((b) => `"${b.id}"`);
    busNode.fail(
      `the id of a ${driver.busKind} bus declared under "buses" (${candidates.join(', ') || 'none declared'})`,
    );
  }
  const identityNode = node.field('cloudIdentity');
  return {
    id,
    compatible,
    bus: busId,
    status: node.field('status').oneOf(['okay', 'disabled'], { default: 'okay' }),
    label: node.field('label').optionalString(),
    cloudIdentity: identityNode.oneOf(CLOUD_IDENTITIES, { default: 'gateway' }),
    cloudIdentityFile: identityNode.file,
    pollIntervalMs: polled
      ? node.field('pollIntervalMs').integer({
          min: POLL_INTERVAL_MS_MIN,
          max: POLL_INTERVAL_MS_MAX,
          unit: 'ms',
          default: driver.pollIntervalMsDefault,
        })
      : undefined,
    settings: driver.parseSettings(node),
  };
}
