/**
 * Twins as IoT Hub keeps them (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-device-twins):
 * one per device and one per module, each with its own desired and reported sections, each section with
 * its own `$version` that grows by one with every accepted patch.
 */

export interface TwinState {
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

/** `<device>` or `<device>/<module>`: the MQTT client id of the identity, which is how twins are addressed. */
export function identityKey(deviceId: string, moduleId?: string): string {
  return moduleId === undefined ? deviceId : `${deviceId}/${moduleId}`;
}

export class Twins {
  private readonly twins = new Map<string, TwinState>();

  /** The identity's twin, made on first use (the registry and the twin store are apart, as in IoT Hub). */
  get(key: string): TwinState {
    let twin = this.twins.get(key);
    if (twin === undefined) {
      twin = { desired: { $version: 1 }, reported: { $version: 1 } };
      this.twins.set(key, twin);
    }
    return twin;
  }

  /** Deleting an identity deletes its twin, so one made again under the same id starts at $version 1. */
  delete(key: string): void {
    this.twins.delete(key);
    for (const other of [...this.twins.keys()]) if (other.startsWith(`${key}/`)) this.twins.delete(other);
  }

  /** Applies a desired patch; returns the new $version. */
  patchDesired(key: string, patch: Record<string, unknown>): number {
    return bump(this.get(key).desired, patch);
  }

  /** Applies a reported patch, or returns IoT Hub's refusal without applying any of it. */
  patchReported(key: string, patch: Record<string, unknown>): { version: number } | { error: string } {
    const bad = badKey(patch);
    if (bad !== null) return { error: `Property name '${bad}' contains invalid characters ('.', '$' or space)` };
    return { version: bump(this.get(key).reported, patch) };
  }
}

function bump(section: Record<string, unknown>, patch: Record<string, unknown>): number {
  mergePatch(section, patch);
  const version = (section.$version as number) + 1;
  section.$version = version;
  return version;
}

/** The first key, at any depth, that IoT Hub refuses in a twin document ('.', '$', space, control characters). */
export function badKey(doc: Record<string, unknown>): string | null {
  for (const [key, value] of Object.entries(doc)) {
    if (/[.$ \u0000-\u001f\u007f-\u009f]/.test(key)) return key;
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    const inner = isObject ? badKey(value as Record<string, unknown>) : null;
    if (inner !== null) return inner;
  }
  return null;
}

/** JSON merge patch (RFC 7386), which is how IoT Hub applies twin patches: null deletes a key. */
export function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$version') continue;
    if (value === null) delete target[key];
    else if (typeof value === 'object' && !Array.isArray(value)) {
      const current = target[key];
      const child = typeof current === 'object' && current !== null ? (current as Record<string, unknown>) : {};
      mergePatch(child, value as Record<string, unknown>);
      target[key] = child;
    } else target[key] = value;
  }
}
