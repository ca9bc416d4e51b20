import { SCOPE_SCHEMA } from './identity.js';
import type { ScopeApiDevice, ScopeApiResult } from './scope-api.js';

/**
 * The device-scope API's answer as a scope document (firmware/auth/identity.ts), so it goes through the one
 * validator and the one cache path. The gateway itself is left out (it is not a child), and so are IoT Edge's
 * system modules (`$edgeHub` is outpost itself, `$edgeAgent` has no place on an outpost gateway): their keys
 * must never let a local client in. An identity IoT Hub lets authenticate by no means of outpost's
 * (`authentication.type` "none") is left out too. Shapes are not trusted here; the validator judges them.
 */

type Json = Record<string, unknown>;

/** The service API's authentication types, as the scope document names them. */
const AUTH_TYPES: Record<string, string> = {
  sas: 'sas',
  selfSigned: 'x509-thumbprint',
  certificateAuthority: 'x509-ca',
};

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A number that changes whenever IoT Hub changes the identity (a new etag or a re-created device). */
function versionOf(identity: ScopeApiDevice): number {
  let hash = 0x811c9dc5;
  for (const ch of `${String(identity.generationId)}:${String(identity.etag)}`) {
    hash = Math.imul(hash ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  }
  return hash & 0x7fffffff;
}

function authOf(value: unknown): Json | null {
  if (!isObject(value)) return {};
  const type = AUTH_TYPES[String(value.type)];
  if (type === undefined) return value.type === 'none' ? null : { type: value.type };
  const keys = isObject(value.symmetricKey) ? value.symmetricKey : {};
  const prints = isObject(value.x509Thumbprint) ? value.x509Thumbprint : {};
  if (type === 'sas') return { type, primaryKey: keys.primaryKey, secondaryKey: keys.secondaryKey };
  if (type === 'x509-thumbprint') {
    return { type, primaryThumbprint: prints.primaryThumbprint, secondaryThumbprint: prints.secondaryThumbprint };
  }
  return { type };
}

function entry(identity: ScopeApiDevice, idField: 'deviceId' | 'moduleId'): Json | null {
  const auth = authOf(identity.authentication);
  if (auth === null) return null;
  // Modules have no status of their own in IoT Hub: they follow their device's.
  const status = identity.status === undefined ? 'enabled' : identity.status;
  return { [idField]: identity[idField], status, version: versionOf(identity), auth };
}

export function scopeDocumentFromApi(
  result: ScopeApiResult,
  gatewayId: string,
  hubHostName: string,
  version: number,
): Json {
  const modulesOf = (deviceId: unknown) =>
    result.modules
      .filter((m) => m.deviceId === deviceId && !String(m.moduleId).startsWith('$'))
      .map((m) => entry(m, 'moduleId'))
      .filter((m): m is Json => m !== null);
  const devices = result.devices
    .filter((d) => d.deviceId !== gatewayId)
    .map((d) => {
      const device = entry(d, 'deviceId');
      const modules = modulesOf(d.deviceId);
      return device === null ? null : { ...device, ...(modules.length > 0 ? { modules } : {}) };
    })
    .filter((d): d is Json => d !== null);
  const own = modulesOf(gatewayId);
  return {
    schema: SCOPE_SCHEMA,
    gatewayId,
    version,
    hubHostName,
    devices,
    ...(own.length > 0 ? { modules: own } : {}),
  };
}
