import type tls from 'node:tls';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { EDGE_HUB_MODULE_ID, keysOf, type Authentication, type Registry } from './iothub-emulator-registry.js';

/**
 * IoT Hub's CONNECT rules (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub):
 * - ClientId is the device id, or `<device>/<module>` for a module identity.
 * - Username is `<hub>/<clientId>/?api-version=...`, with more query parameters an SDK may add
 *   (`DeviceClientType`, `model-id`; the C# SDK's MQTT transport, which edgeHub ≥ 1.2 uses upstream, appends
 *   `auth-chain=<leaf>;<edge>...` URI-escaped, naming the identity and then each gateway it is reached through).
 * - Password is a SAS token whose resource is the identity (`<hub>/devices/<d>` or `<hub>/devices/<d>/modules/<m>`)
 *   signed with one of its keys; or, for a transparent gateway's edgeHub connecting on behalf of a child, a token
 *   for `<hub>/devices/<gw>/modules/$edgeHub` signed with that module's key, valid only for a device in the
 *   gateway's scope or a module of the gateway itself.
 * - An X.509 identity presents a client certificate: a registered thumbprint (selfSigned), or one chaining
 *   to the hub's CA with CN = device id (certificateAuthority).
 * Disabled and unknown identities are refused with CONNACK 5 (not authorized), as are bad credentials.
 */

export type AuthMethod = 'sas' | 'x509' | 'on-behalf-of';

export interface Accepted {
  deviceId: string;
  moduleId?: string;
  method: AuthMethod;
  /** For `on-behalf-of`: the gateway whose `$edgeHub` key signed the token. */
  actorDeviceId?: string;
  /** The `auth-chain` username parameter, split, when the client sent one. */
  authChain?: string[];
  generationId: string;
  /** When the SAS token the connection was made with expires: IoT Hub closes the connection then. */
  expiresAtMs?: number;
}

export interface Refused {
  /** MQTT 3.1.1 CONNACK return code. */
  returnCode: 2 | 3 | 4 | 5;
  reason: string;
}

export interface ConnectAttempt {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  socket: tls.TLSSocket;
}

/** `<hub>/<clientId>/?<query>` split; null when the username is not of that form. */
export function parseUsername(username: string): { hostName: string; clientId: string; query: URLSearchParams } | null {
  const marker = username.indexOf('/?');
  const head = marker < 0 ? username.replace(/\/$/, '') : username.slice(0, marker);
  const slash = head.indexOf('/');
  if (slash <= 0) return null;
  return {
    hostName: head.slice(0, slash),
    clientId: head.slice(slash + 1),
    query: new URLSearchParams(marker < 0 ? '' : username.slice(marker + 2)),
  };
}

export function authenticate(
  registry: Registry,
  hostNames: ReadonlySet<string>,
  attempt: ConnectAttempt,
): Accepted | Refused {
  const [deviceId, moduleId, extra] = attempt.clientId.split('/');
  if (deviceId === undefined || deviceId === '' || extra !== undefined) return refused(2, 'malformed client id');
  const user = attempt.username === undefined ? null : parseUsername(attempt.username);
  if (user === null || user.clientId !== attempt.clientId) return refused(4, 'username does not name the client id');
  if (!hostNames.has(user.hostName)) return refused(4, `username names another hub "${user.hostName}"`);
  const device = registry.device(deviceId);
  const identity = moduleId === undefined ? device : registry.module(deviceId, moduleId);
  if (device === undefined || identity === undefined) return refused(5, 'identity not registered');
  if (device.status !== 'enabled') return refused(5, 'device is disabled');
  const chain = user.query.get('auth-chain');
  const authChain = chain === null ? undefined : chain.split(';');
  const base = { deviceId, ...(moduleId === undefined ? {} : { moduleId }), generationId: identity.generationId };
  const own = `${user.hostName}/devices/${deviceId}${moduleId === undefined ? '' : `/modules/${moduleId}`}`;
  if (attempt.password === undefined) {
    if (!certificateValid(identity.authentication, attempt.socket, deviceId)) return refused(5, 'no valid credentials');
    return { ...base, method: 'x509', ...(authChain ? { authChain } : {}) };
  }
  const token = parseSas(attempt.password.toString());
  if (token === null) return refused(5, 'password is not a SAS token');
  if (token.resource === own) {
    if (!signedByOneOf(token, keysOf(identity.authentication))) return refused(5, 'bad SAS signature or expired');
    return { ...base, method: 'sas', ...(authChain ? { authChain } : {}), expiresAtMs: token.expirySecs * 1000 };
  }
  const actor = new RegExp(`^${escapeRe(user.hostName)}/devices/([^/]+)/modules/\\$edgeHub$`).exec(token.resource);
  if (actor === null) return refused(5, 'token resource does not match the identity');
  return onBehalfOf(registry, { ...base, authChain }, actor[1]!, token);
}

function onBehalfOf(
  registry: Registry,
  base: Omit<Accepted, 'method'>,
  gatewayId: string,
  token: SasToken,
): Accepted | Refused {
  const gateway = registry.device(gatewayId);
  const edgeHub = registry.module(gatewayId, EDGE_HUB_MODULE_ID);
  if (gateway === undefined || edgeHub === undefined || !gateway.capabilities.iotEdge) {
    return refused(5, `"${gatewayId}" is not an IoT Edge device`);
  }
  if (gateway.status !== 'enabled') return refused(5, 'the gateway is disabled');
  if (!signedByOneOf(token, keysOf(edgeHub.authentication))) return refused(5, 'bad $edgeHub signature or expired');
  const isGatewayModule = base.moduleId !== undefined && base.deviceId === gatewayId;
  const isChild = registry.isChildOf(base.deviceId, gatewayId);
  if (!isGatewayModule && !isChild) return refused(5, `"${base.deviceId}" is not in the scope of "${gatewayId}"`);
  // An auth chain, when given, must start at the identity and end at the gateway that signed.
  const chain = base.authChain;
  const self = base.moduleId === undefined ? base.deviceId : `${base.deviceId}/${base.moduleId}`;
  if (chain !== undefined && (chain[0] !== self || chain.at(-1) !== gatewayId)) {
    return refused(5, `auth-chain "${chain.join(';')}" does not lead from "${self}" to "${gatewayId}"`);
  }
  const { authChain, ...rest } = base;
  return {
    ...rest,
    ...(authChain ? { authChain } : {}),
    method: 'on-behalf-of',
    actorDeviceId: gatewayId,
    expiresAtMs: token.expirySecs * 1000,
  };
}

/** The client certificate the TLS socket presented, judged as IoT Hub judges it for an X.509 identity. */
export function certificateValid(auth: Authentication, socket: tls.TLSSocket, deviceId: string): boolean {
  const peer = socket.getPeerCertificate();
  if (peer === null || Object.keys(peer).length === 0) return false;
  if (auth.type === 'certificateAuthority') return socket.authorized && peer.subject?.CN === deviceId;
  if (auth.type !== 'selfSigned') return false;
  const sha1 = peer.fingerprint.replaceAll(':', '');
  const sha256 = peer.fingerprint256.replaceAll(':', '');
  const { primaryThumbprint, secondaryThumbprint } = auth.x509Thumbprint;
  return [primaryThumbprint, secondaryThumbprint].some((t) => t !== null && (t === sha1 || t === sha256));
}

export interface SasToken {
  /** The decoded `sr`. */
  resource: string;
  encodedResource: string;
  expirySecs: number;
  signature: Buffer;
}

/** `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64>&se=<expiry secs>[&skn=<policy>]`. */
export function parseSas(text: string): SasToken | null {
  if (!text.startsWith('SharedAccessSignature ')) return null;
  const fields = new Map<string, string>();
  for (const part of text.slice('SharedAccessSignature '.length).split('&')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr');
  const se = Number(fields.get('se'));
  const sig = fields.get('sig');
  if (sr === undefined || sig === undefined || !Number.isFinite(se)) return null;
  try {
    return {
      resource: decodeURIComponent(sr),
      encodedResource: sr,
      expirySecs: se,
      signature: Buffer.from(decodeURIComponent(sig), 'base64'),
    };
  } catch {
    return null;
  }
}

/** HMAC-SHA256 over "<url-encoded sr>\n<se>" with one of the keys, and not expired. */
export function signedByOneOf(token: SasToken, keysBase64: string[]): boolean {
  if (token.expirySecs * 1000 < Date.now()) return false;
  return keysBase64.some((key) => {
    const expected = createHmac('sha256', Buffer.from(key, 'base64'))
      .update(`${token.encodedResource}\n${token.expirySecs}`)
      .digest();
    return token.signature.length === expected.length && timingSafeEqual(token.signature, expected);
  });
}

function refused(returnCode: Refused['returnCode'], reason: string): Refused {
  return { returnCode, reason };
}

function escapeRe(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
