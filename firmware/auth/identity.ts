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
 *   "trustBundle": "-----BEGIN CERTIFICATE-----...", // optional: PEM CAs for "x509-ca" devices
 *   "devices": [                         // or an object keyed by device id (twin-friendly: patchable, null removes)
 *     { "deviceId": "sensor-1", "status": "enabled", "version": 3,
 *       "auth": { "type": "sas", "primaryKey": "<base64>", "secondaryKey": "<base64>" } },
 *     { "deviceId": "cam-2", "status": "disabled", "version": 1,
 *       "auth": { "type": "x509-thumbprint", "primaryThumbprint": "<sha1 or sha256 hex>" } },
 *     { "deviceId": "plc-3", "status": "enabled", "version": 1, "auth": { "type": "x509-ca" } }
 *   ]
 * }
 * ```
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
  devices: Identity[];
}

export const SCOPE_SCHEMA = 'outpost-scope/1';
/** Children one gateway serves; IoT Edge's own guidance tops out around this many per gateway. */
export const SCOPE_DEVICES_MAX = 1_000;
/** IoT Hub device ids: up to 128 characters; `/`, `+` and `#` excluded so an id is always one topic level. */
export const DEVICE_ID_PATTERN = /^[A-Za-z0-9\-.:_@!(),=$'%*?]{1,128}$/;
/** A SAS key is 16 to 64 bytes, base64 (IoT Hub's own rule). */
const SAS_KEY_PATTERN = /^[A-Za-z0-9+/]{20,88}={0,2}$/;
/** SHA-1 (40) or SHA-256 (64) hex, colons allowed as openssl prints them. */
const THUMBPRINT_PATTERN = /^(?:[0-9A-Fa-f]{2}:?){19}[0-9A-Fa-f]{2}$|^(?:[0-9A-Fa-f]{2}:?){31}[0-9A-Fa-f]{2}$/;
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

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseAuth(value: unknown, at: string): AuthSpec {
  if (!isObject(value)) throw new ScopeError(`${at} must be an object`);
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
      return { type: 'sas', primaryKey: required('primaryKey', SAS_KEY_PATTERN), ...(secondaryKey ? { secondaryKey } : {}) };
    }
    case 'x509-thumbprint': {
      const primary = normalizeThumbprint(required('primaryThumbprint', THUMBPRINT_PATTERN));
      const secondary = optional('secondaryThumbprint', THUMBPRINT_PATTERN);
      return { type: 'x509-thumbprint', primaryThumbprint: primary, ...(secondary ? { secondaryThumbprint: normalizeThumbprint(secondary) } : {}) };
    }
    case 'x509-ca':
      return { type: 'x509-ca' };
    default:
      throw new ScopeError(`${at}.type must be "sas", "x509-thumbprint" or "x509-ca", got ${JSON.stringify(value.type)}`);
  }
}

function parseDevice(value: unknown, at: string, gatewayId: string): Identity {
  if (!isObject(value)) throw new ScopeError(`${at} must be an object`);
  const { deviceId, status = 'enabled', version = 1 } = value;
  if (typeof deviceId !== 'string' || !DEVICE_ID_PATTERN.test(deviceId)) {
    throw new ScopeError(`${at}.deviceId must match ${DEVICE_ID_PATTERN}, got ${JSON.stringify(deviceId)}`);
  }
  if (status !== 'enabled' && status !== 'disabled') throw new ScopeError(`${at}.status of "${deviceId}" must be "enabled" or "disabled"`);
  if (!Number.isSafeInteger(version) || (version as number) < 0) throw new ScopeError(`${at}.version of "${deviceId}" must be a non-negative integer`);
  return { deviceId, parent: gatewayId, status, auth: parseAuth(value.auth, `${at}.auth`), version: version as number };
}

/** Validates a scope document for `gatewayId`; errors name the JSON path. Never trusts the sender's shape. */
export function parseScopeDocument(value: unknown, gatewayId: string): ScopeDocument {
  if (!isObject(value)) throw new ScopeError('scope document must be a JSON object');
  if (value.schema !== SCOPE_SCHEMA) throw new ScopeError(`scope.schema must be "${SCOPE_SCHEMA}", got ${JSON.stringify(value.schema)}`);
  if (value.gatewayId !== gatewayId) throw new ScopeError(`scope.gatewayId is ${JSON.stringify(value.gatewayId)}, this gateway is "${gatewayId}"`);
  if (!Number.isSafeInteger(value.version) || (value.version as number) < 0) throw new ScopeError('scope.version must be a non-negative integer');
  const hubHostName = value.hubHostName ?? null;
  if (hubHostName !== null && (typeof hubHostName !== 'string' || !/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/.test(hubHostName))) {
    throw new ScopeError('scope.hubHostName must be a host name');
  }
  const trustBundle = value.trustBundle ?? null;
  if (trustBundle !== null && (typeof trustBundle !== 'string' || !trustBundle.includes('-----BEGIN CERTIFICATE-----') || trustBundle.length > PEM_BYTES_MAX)) {
    throw new ScopeError(`scope.trustBundle must be PEM certificates, at most ${PEM_BYTES_MAX} bytes`);
  }
  // A twin cannot patch array elements, so `devices` may also be an object keyed by device id.
  const list = isObject(value.devices)
    ? Object.entries(value.devices).filter(([, d]) => d !== null).map(([deviceId, d]) => (isObject(d) ? { ...d, deviceId } : d))
    : value.devices;
  if (!Array.isArray(list) || list.length > SCOPE_DEVICES_MAX) {
    throw new ScopeError(`scope.devices must be an array or object of at most ${SCOPE_DEVICES_MAX} devices`);
  }
  const seen = new Set<string>();
  const devices = list.map((d: unknown, i: number) => {
    const identity = parseDevice(d, `scope.devices[${i}]`, gatewayId);
    if (seen.has(identity.deviceId)) throw new ScopeError(`scope.devices[${i}].deviceId "${identity.deviceId}" is listed twice`);
    seen.add(identity.deviceId);
    return identity;
  });
  return { gatewayId, version: value.version as number, hubHostName: hubHostName as string | null, trustBundle: trustBundle as string | null, devices };
}
