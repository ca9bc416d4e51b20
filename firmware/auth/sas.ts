import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * IoT Hub shared access signatures: `SharedAccessSignature sr=<url-encoded resource>&sig=<url-encoded base64
 * HMAC-SHA256>&se=<expiry, seconds since epoch>`. The signature covers the resource exactly as it appears in
 * the token (still URL-encoded), a newline and the expiry string, as IoT Hub computes it.
 *
 * `skn=<policy>` is refused: it names a shared access policy (`iothubowner`, `device`...), i.e. a token signed
 * with a hub-level key, which a device's own token never carries. Accepting and ignoring it would let a token
 * look like one thing to an operator reading it and be checked as another.
 */

/** Longer than any token the SDKs make (a 128-char id on a 253-char host); anything bigger is noise. */
export const SAS_TOKEN_CHARS_MAX = 1_024;
/** Expiry seconds fit in 10 digits until the year 2286; more digits are an attempt to overflow. */
const EXPIRY_DIGITS_MAX = 10;

export interface SasToken {
  /** The `sr` field as sent (URL-encoded); the signature covers this text. */
  resourceRaw: string;
  /** The host part of `sr`, decoded and lower-cased: DNS names are case-insensitive. */
  host: string;
  /** The rest of `sr` after the host, decoded, exact: IoT Hub and edgeHub compare device ids case-sensitively. */
  path: string;
  expiryRaw: string;
  expirySecs: number;
  signature: Buffer;
}

export type SasFailure = 'malformed' | 'expired' | 'token-lifetime' | 'audience' | 'signature';

/** Parses without trusting anything; returns null for any malformed token (counted by the caller). */
export function parseSasToken(text: string): SasToken | null {
  const prefix = 'SharedAccessSignature ';
  if (typeof text !== 'string' || text.length > SAS_TOKEN_CHARS_MAX || !text.startsWith(prefix)) return null;
  const fields = new Map<string, string>();
  for (const part of text.slice(prefix.length).split('&')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return null;
    const key = part.slice(0, eq);
    // A repeated field could make the signed and the checked values differ; refuse rather than pick one.
    if (fields.has(key) || !['sr', 'sig', 'se'].includes(key)) return null;
    fields.set(key, part.slice(eq + 1));
  }
  const resourceRaw = fields.get('sr');
  const sig = fields.get('sig');
  const expiryRaw = fields.get('se');
  if (!resourceRaw || !sig || !expiryRaw) return null;
  if (!/^\d+$/.test(expiryRaw) || expiryRaw.length > EXPIRY_DIGITS_MAX) return null;
  let resource: string;
  let sigText: string;
  try {
    resource = decodeURIComponent(resourceRaw);
    sigText = decodeURIComponent(sig);
  } catch {
    return null;
  }
  if (!/^[A-Za-z0-9+/]{43}=$/.test(sigText)) return null;
  const slash = resource.indexOf('/');
  if (slash <= 0) return null;
  const host = resource.slice(0, slash).toLowerCase();
  return {
    resourceRaw,
    host,
    path: resource.slice(slash + 1),
    expiryRaw,
    expirySecs: Number(expiryRaw),
    signature: Buffer.from(sigText, 'base64'),
  };
}

export interface SasCheck {
  /** The resource path after `devices/`: a device id, or `<deviceId>/modules/<moduleId>` for a module. */
  deviceId: string;
  /** Host names the token may name: the gateway's own and the hub's. */
  audiences: readonly string[];
  /** Base64 keys to try: primary, then secondary. */
  keys: readonly string[];
  nowMs: number;
  /** Tolerance for a child's clock running ahead of or behind ours, seconds. */
  skewSecs: number;
  /** Furthest a token's expiry may lie ahead of now (plus the skew), seconds: bounds what a leaked token is worth. */
  lifetimeSecsMax: number;
}

export function sign(resourceRaw: string, expiryRaw: string, keyBase64: string): Buffer {
  return createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(`${resourceRaw}\n${expiryRaw}`).digest();
}

/** Checks a parsed token against one device; the order of checks reports the most useful reason. */
export function verifySas(token: SasToken, check: SasCheck): SasFailure | null {
  if (token.expirySecs * 1000 + check.skewSecs * 1000 < check.nowMs) return 'expired';
  if (token.expirySecs * 1000 > check.nowMs + (check.lifetimeSecsMax + check.skewSecs) * 1000) return 'token-lifetime';
  if (!check.audiences.some((host) => host.toLowerCase() === token.host)) return 'audience';
  if (token.path !== `devices/${check.deviceId}`) return 'audience';
  for (const key of check.keys) {
    const mac = sign(token.resourceRaw, token.expiryRaw, key);
    if (mac.length === token.signature.length && timingSafeEqual(mac, token.signature)) return null;
  }
  return 'signature';
}

/** Makes a token the way the device SDKs do; for tests, the CLI and the gateway's own drivers. */
export function makeSasToken(resource: string, keyBase64: string, expirySecs: number): string {
  const resourceRaw = encodeURIComponent(resource);
  const expiryRaw = String(expirySecs);
  const sig = encodeURIComponent(sign(resourceRaw, expiryRaw, keyBase64).toString('base64'));
  return `SharedAccessSignature sr=${resourceRaw}&sig=${sig}&se=${expiryRaw}`;
}
