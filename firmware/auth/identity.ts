import { isJsonObject } from '../json.js';
import { DEVICE_ID_PATTERN } from '../device-id.js';

export { DEVICE_ID_PATTERN };

/**
 * Child identities as the gateway caches them, and the scope document the cloud sends them in.
 *
 * Scope document (JSON; `schema` must be "outpost-scope/1"):
 *
 * ```json
 * {
 *   "schema": "outpost-scope/1",
 *   "gatewayId": "gw-1",                 // must equal this gateway's id, so a document meant for another is refused
 *   "version": 42,                       // increases with every change; an older document than the cache is ignored
 *   "hubHostName": "myhub.azure-devices.net",  // optional: a SAS audience besides the gateway's own host names
 *   "trustBundle": "-----BEGIN CERTIFICATE-----...", // PEM CAs for "x509-ca" devices; without it they are refused
 *   "thumbprintSha1": false,             // optional: also accept SHA-1 thumbprints (see below); default false
 *   "devices": [                         // or an object keyed by device id (twin-friendly: patchable, null removes)
 *     { "deviceId": "sensor-1", "status": "enabled", "version": 3,
 *       "auth": { "type": "sas", "primaryKey": "<base64>", "secondaryKey": "<base64>" } },
 *     { "deviceId": "cam-2", "status": "disabled", "version": 1,
 *       "auth": { "type": "x509-thumbprint", "primaryThumbprint": "<sha256 hex>" } },
 *     { "deviceId": "plc-3", "status": "enabled", "version": 1, "auth": { "type": "x509-ca" },
 *       "modules": [                     // optional: the device's module identities (array, or object keyed by id)
 *         { "moduleId": "filter", "status": "enabled", "version": 1, "auth": { "type": "sas", "primaryKey": "<base64>" } }
 *       ] }
 *   ],
 *   "modules": [ ... ]                   // optional: modules of the gateway itself (IoT Edge's own modules), same shape
 * }
 * ```
 *
 * Module identities (IoT Edge's dialect): a module connects with MQTT client id `<deviceId>/<moduleId>` and a
 * SAS token for `<host>/devices/<deviceId>/modules/<moduleId>`. The cache keeps each as an `Identity` whose
 * `deviceId` is that client id (the "connection id"); its twin, methods and input lanes are keyed by it too.
 * Removing or disabling a device entry removes or disables its modules with it. Documents without `modules`
 * (every document before modules existed) mean exactly what they meant before.
 *
 * Thumbprints: IoT Hub still accepts SHA-1 and SHA-256 thumbprints for self-signed devices, while Azure's own
 * tooling (az iot, since azure-iot-cli-extension 0.25) makes SHA-256 ones only. SHA-1 has practical chosen-prefix
 * collisions, so a SHA-1 thumbprint is compared only when the document says `"thumbprintSha1": true` (a fleet
 * registered before the switch); otherwise a device registered with one is refused until re-registered.
 * The certificate's validity dates are checked against the gateway's clock either way.
 *
 * The document is the whole scope: a device missing from it is removed (revoked). For `mqtt` uplinks it is a
 * retained message on `outpost/<gatewayId>/scope`; for `azure`, the gateway twin's desired property
 * `outpostScope`. It carries device keys, so the topic must be readable only by this gateway (broker ACL, TLS).
 */

export type AuthSpec =
  | { type: 'sas'; primaryKey: string; secondaryKey?: string }
  | { type: 'x509-thumbprint'; primaryThumbprint: string; secondaryThumbprint?: string }
  | { type: 'x509-ca' };

export interface Identity {
  /** The MQTT client id: the device id, or `<deviceId>/<moduleId>` for a module identity. */
  deviceId: string;
  /** The gateway this device belongs to. */
  parent: string;
  status: 'enabled' | 'disabled';
  auth: AuthSpec;
  /** Changes whenever the cloud changes the identity. */
  version: number;
}

export interface ScopeDocument {
  gatewayId: string;
  version: number;
  hubHostName: string | null;
  trustBundle: string | null;
  /** Whether SHA-1 thumbprints are compared (see above); false unless the document says so. */
  thumbprintSha1: boolean;
  devices: Identity[];
}

export const SCOPE_SCHEMA = 'outpost-scope/1';
/** Children one gateway serves; IoT Edge's own guidance tops out around this many per gateway. */
export const SCOPE_DEVICES_MAX = 1_000;
/** Identities (devices plus modules) one scope may hold; bounds the cache whatever the mix. */
export const SCOPE_IDENTITIES_MAX = 2_000;
/** IoT Hub module ids follow the device id rules. */
export const MODULE_ID_PATTERN = DEVICE_ID_PATTERN;
/** Modules one device (or the gateway) may have; IoT Edge deployments run a few dozen at most. */
export const MODULES_PER_DEVICE_MAX = 50;

/** A client id is a device id or `<deviceId>/<moduleId>`; null when it is neither. */
export function splitConnectionId(connectionId: string): { deviceId: string; moduleId: string | null } | null {
  const parts = connectionId.split('/');
  if (parts.length === 1 && DEVICE_ID_PATTERN.test(parts[0])) return { deviceId: parts[0], moduleId: null };
  if (parts.length === 2 && DEVICE_ID_PATTERN.test(parts[0]) && MODULE_ID_PATTERN.test(parts[1]))
    return { deviceId: parts[0], moduleId: parts[1] };
  return null;
}
/** A SAS key is 16 to 64 bytes, base64 (IoT Hub's own rule). */
const SAS_KEY_PATTERN = /^[A-Za-z0-9+/]{20,88}={0,2}$/;
/** SHA-1 (40) or SHA-256 (64) hex, colons allowed as openssl prints them. */
const THUMBPRINT_PATTERN = /^(?:[0-9A-Fa-f]{2}:?){19}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/;
/** A scope document's trust bundle, bytes: a few hundred CA certificates of 1-2 KiB; more is not a bundle. */
const PEM_BYTES_MAX = 256 * 1024;

export class ScopeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ScopeError';
  }
}

export function normalizeThumbprint(value: string): string {
  return value.replace(/:/g, '').toUpperCase();
}

type Json = Record<string, unknown>;

function parseAuth(value: unknown, at: string): AuthSpec {
  if (!isJsonObject(value)) throw new ScopeError(`${at} must be an object`);
  const optional = (key: string, pattern: RegExp): string | undefined => {
    const v = value[key];
    if (v === undefined || v === null) return undefined;
    if (typeof v !== 'string' || !pattern.test(v)) throw new ScopeError(`${at}.${key} is not valid`);
    return v;
  };
  const required = (key: string, pattern: RegExp): string => {
    const v = optional(key, pattern);
    if (v === undefined) throw new ScopeError(`${at}.${key} is required`);
    return v;
  };
  switch (value.type) {
    case 'sas': {
      const secondaryKey = optional('secondaryKey', SAS_KEY_PATTERN);
      return {
        type: 'sas',
        primaryKey: required('primaryKey', SAS_KEY_PATTERN),
        ...(secondaryKey ? { secondaryKey } : {}),
      };
    }
    case 'x509-thumbprint': {
      const primary = normalizeThumbprint(required('primaryThumbprint', THUMBPRINT_PATTERN));
      const secondary = optional('secondaryThumbprint', THUMBPRINT_PATTERN);
      return {
        type: 'x509-thumbprint',
        primaryThumbprint: primary,
        ...(secondary ? { secondaryThumbprint: normalizeThumbprint(secondary) } : {}),
      };
    }
    case 'x509-ca':
      return { type: 'x509-ca' };
    default:
      throw new ScopeError(
        `${at}.type must be "sas", "x509-thumbprint" or "x509-ca", got ${JSON.stringify(value.type)}`,
      );
  }
}

/** One device or module entry; `idField` names its id field and `prefix` makes a module's connection id. */
function parseEntry(
  value: unknown,
  at: string,
  gatewayId: string,
  idField: 'deviceId' | 'moduleId',
  prefix = '',
): Identity {
  if (!isJsonObject(value)) throw new ScopeError(`${at} must be an object`);
  const { [idField]: id, status = 'enabled', version = 1 } = value;
  if (typeof id !== 'string' || !DEVICE_ID_PATTERN.test(id)) {
    throw new ScopeError(`${at}.${idField} must match ${DEVICE_ID_PATTERN}, got ${JSON.stringify(id)}`);
  }
  const deviceId = prefix + id;
  if (status !== 'enabled' && status !== 'disabled')
    throw new ScopeError(`${at}.status of "${deviceId}" must be "enabled" or "disabled"`);
  if (!Number.isSafeInteger(version) || (version as number) < 0)
    throw new ScopeError(`${at}.version of "${deviceId}" must be a non-negative integer`);
  return { deviceId, parent: gatewayId, status, auth: parseAuth(value.auth, `${at}.auth`), version: version as number };
}

/** A twin cannot patch array elements, so a list may also be an object keyed by id (null entries removed). */
function entryList(value: unknown, idField: string): unknown {
  return isJsonObject(value)
    ? Object.entries(value)
        .filter(([, d]) => d !== null)
        .map(([id, d]) => (isJsonObject(d) ? { ...d, [idField]: id } : d))
    : value;
}

/** A device's (or the gateway's) `modules`, flattened to identities; a disabled owner disables them all. */
function parseModules(
  value: unknown,
  at: string,
  gatewayId: string,
  owner: string,
  ownerStatus: Identity['status'],
): Identity[] {
  if (value === undefined || value === null) return [];
  const list = entryList(value, 'moduleId');
  if (!Array.isArray(list) || list.length > MODULES_PER_DEVICE_MAX) {
    throw new ScopeError(`${at} must be an array or object of at most ${MODULES_PER_DEVICE_MAX} modules`);
  }
  return list.map((m: unknown, i: number) => {
    const identity = parseEntry(m, `${at}[${i}]`, gatewayId, 'moduleId', `${owner}/`);
    return ownerStatus === 'disabled' ? { ...identity, status: 'disabled' } : identity;
  });
}

function parseDevice(value: unknown, at: string, gatewayId: string): Identity[] {
  const device = parseEntry(value, at, gatewayId, 'deviceId');
  return [device, ...parseModules((value as Json).modules, `${at}.modules`, gatewayId, device.deviceId, device.status)];
}

/** Validates a scope document for `gatewayId`; errors name the JSON path. Never trusts the sender's shape. */
export function parseScopeDocument(value: unknown, gatewayId: string): ScopeDocument {
  if (!isJsonObject(value)) throw new ScopeError('scope document must be a JSON object');
  if (value.schema !== SCOPE_SCHEMA)
    throw new ScopeError(`scope.schema must be "${SCOPE_SCHEMA}", got ${JSON.stringify(value.schema)}`);
  if (value.gatewayId !== gatewayId)
    throw new ScopeError(`scope.gatewayId is ${JSON.stringify(value.gatewayId)}, this gateway is "${gatewayId}"`);
  if (!Number.isSafeInteger(value.version) || (value.version as number) < 0)
    throw new ScopeError('scope.version must be a non-negative integer');
  const hubHostName = value.hubHostName ?? null;
  if (
    hubHostName !== null &&
    (typeof hubHostName !== 'string' || !/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/.test(hubHostName))
  ) {
    throw new ScopeError('scope.hubHostName must be a host name');
  }
  const trustBundle = value.trustBundle ?? null;
  if (
    trustBundle !== null &&
    (typeof trustBundle !== 'string' ||
      !trustBundle.includes('-----BEGIN CERTIFICATE-----') ||
      trustBundle.length > PEM_BYTES_MAX)
  ) {
    throw new ScopeError(`scope.trustBundle must be PEM certificates, at most ${PEM_BYTES_MAX} bytes`);
  }
  const thumbprintSha1 = value.thumbprintSha1 ?? false;
  if (typeof thumbprintSha1 !== 'boolean') throw new ScopeError('scope.thumbprintSha1 must be true or false');
  const list = entryList(value.devices, 'deviceId');
  if (!Array.isArray(list) || list.length > SCOPE_DEVICES_MAX) {
    throw new ScopeError(`scope.devices must be an array or object of at most ${SCOPE_DEVICES_MAX} devices`);
  }
  const seen = new Set<string>();
  const devices: Identity[] = [];
  const add = (identities: Identity[], at: string) => {
    for (const identity of identities) {
      if (seen.has(identity.deviceId)) throw new ScopeError(`${at}: "${identity.deviceId}" is listed twice`);
      seen.add(identity.deviceId);
      devices.push(identity);
    }
  };
  list.forEach((d: unknown, i: number) => add(parseDevice(d, `scope.devices[${i}]`, gatewayId), `scope.devices[${i}]`));
  add(parseModules(value.modules, 'scope.modules', gatewayId, gatewayId, 'enabled'), 'scope.modules');
  if (devices.length > SCOPE_IDENTITIES_MAX)
    throw new ScopeError(`scope holds ${devices.length} devices and modules, more than ${SCOPE_IDENTITIES_MAX}`);
  return {
    gatewayId,
    version: value.version as number,
    hubHostName: hubHostName as string | null,
    trustBundle: trustBundle as string | null,
    thumbprintSha1,
    devices,
  };
}
