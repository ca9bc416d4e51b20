import type { TLSSocket } from 'node:tls';
import type { Clock } from '../clock.js';
import type { IdentityCache } from './cache.js';
import type { AuthSpec } from './identity.js';
import { normalizeThumbprint, splitConnectionId } from './identity.js';
import { AddressBackoff, FailureLimiter } from './limiter.js';
import { parseSasToken, verifySas } from './sas.js';

/** Why a connection was refused; counted per reason in the hub's status. */
export type AuthRefusal =
  | 'malformed'
  | 'unknown-device'
  | 'disabled'
  | 'expired'
  | 'token-lifetime'
  | 'audience'
  | 'signature'
  | 'certificate'
  | 'rate-limited';

export interface AuthLimits {
  /**
   * Failed attempts per (client id, address) before that pair is refused for the rest of the window, and per
   * address before the address backs off (1 s doubling, up to the window). Default 5.
   */
  authFailuresMax: number;
  /** Window those failures are counted in, seconds. Default 60. */
  authFailureWindowSecs: number;
  /** Allowance for a child's clock being off when checking SAS expiry, seconds. Default 300 (IoT Hub's 5 min). */
  tokenSkewSecs: number;
  /** Longest a SAS token may still be valid for when presented, seconds. Default 86,400 (see hub/config.ts). */
  tokenLifetimeSecsMax: number;
}

export interface ConnectAttempt {
  clientId: string;
  username: string | undefined;
  password: Buffer | undefined;
  /** The TLS socket when the child came in over TLS; certificates are read from it. */
  tls: TLSSocket | null;
  remoteAddress: string;
}

/** Keys remembered by the failure limiter, entries; bounds memory under a flood of random client ids. */
const LIMITER_KEYS_MAX = 10_000;
/** MQTT password bytes worth looking at: a SAS token is well under 1 KiB. */
const PASSWORD_BYTES_MAX = 2_048;

/**
 * Decides CONNECTs from the identity cache alone, so children authenticate with the cloud unreachable.
 * IoT Hub's MQTT rules: client id = device id, username `<host>/<deviceId>/?api-version=...`, password a SAS
 * token for `<host>/devices/<deviceId>` — or no password and a client certificate (thumbprint or CA-signed).
 * Modules (IoT Edge): client id `<deviceId>/<moduleId>`, username `<host>/<deviceId>/<moduleId>/?...`, SAS
 * resource `<host>/devices/<deviceId>/modules/<moduleId>`.
 */
export class Authenticator {
  private readonly byPair: FailureLimiter;
  private readonly byAddress: AddressBackoff;

  constructor(
    private readonly cache: IdentityCache,
    private readonly clock: Clock,
    /** Host names a token may name; a function when they change (a provisioned gateway's assigned hub). */
    private readonly gatewayHostNames: readonly string[] | (() => readonly string[]),
    private readonly limits: AuthLimits,
    /** Told about every unknown device id, so the sync can look it up once. */
    private readonly onUnknown: (deviceId: string) => void = () => {},
  ) {
    const windowMs = limits.authFailureWindowSecs * 1000;
    this.byPair = new FailureLimiter(clock, limits.authFailuresMax, windowMs, LIMITER_KEYS_MAX);
    this.byAddress = new AddressBackoff(clock, limits.authFailuresMax, windowMs, windowMs, LIMITER_KEYS_MAX);
  }

  audiences(): string[] {
    const hub = this.cache.hubHostName;
    const own = typeof this.gatewayHostNames === 'function' ? this.gatewayHostNames() : this.gatewayHostNames;
    return hub === null ? [...own] : [...own, hub];
  }

  /** Null when the device may connect, else why not. Failures count toward the rate limits. */
  authenticate(attempt: ConnectAttempt): AuthRefusal | null {
    // A newline cannot occur in an address, so the pair key is unambiguous.
    const pair = `${attempt.remoteAddress}\n${attempt.clientId}`;
    if (this.byPair.blocked(pair) || this.byAddress.waiting(attempt.remoteAddress, pair)) return 'rate-limited';
    const refusal = this.check(attempt);
    if (refusal === null) {
      this.byAddress.succeed(pair);
      return null;
    }
    this.byPair.fail(pair);
    this.byAddress.fail(attempt.remoteAddress);
    return refusal;
  }

  private check(attempt: ConnectAttempt): AuthRefusal | null {
    const { clientId, username, password } = attempt;
    const connection = splitConnectionId(clientId);
    if (connection === null || typeof username !== 'string' || username.length > PASSWORD_BYTES_MAX) return 'malformed';
    const levels = username.split('/');
    const host = levels[0];
    const userClientId = connection.moduleId === null ? levels[1] : `${levels[1]}/${levels[2]}`;
    if (userClientId !== clientId) return 'malformed';
    if (!this.audiences().some((a) => a.toLowerCase() === host.toLowerCase())) return 'audience';
    const identity = this.cache.get(clientId);
    if (identity === undefined) {
      this.onUnknown(clientId);
      return 'unknown-device';
    }
    if (identity.status !== 'enabled') return 'disabled';
    const auth = identity.auth;
    if (auth.type === 'sas') {
      if (password === undefined || password.length > PASSWORD_BYTES_MAX) return 'malformed';
      const token = parseSasToken(password.toString('utf8'));
      if (token === null) return 'malformed';
      const keys = auth.secondaryKey === undefined ? [auth.primaryKey] : [auth.primaryKey, auth.secondaryKey];
      const resourcePath =
        connection.moduleId === null ? clientId : `${connection.deviceId}/modules/${connection.moduleId}`;
      return verifySas(token, {
        deviceId: resourcePath,
        audiences: this.audiences(),
        keys,
        nowMs: this.clock.wallMs(),
        skewSecs: this.limits.tokenSkewSecs,
        lifetimeSecsMax: this.limits.tokenLifetimeSecsMax,
      });
    }
    return this.checkCertificate(clientId, auth, attempt.tls);
  }

  private checkCertificate(clientId: string, auth: AuthSpec, socket: TLSSocket | null): AuthRefusal | null {
    if (socket === null) return 'certificate';
    const cert = socket.getPeerCertificate();
    if (cert === null || cert === undefined || Object.keys(cert).length === 0) return 'certificate';
    if (auth.type === 'x509-thumbprint') {
      // Nobody vouches for a self-signed certificate's dates but the gateway: the TLS layer did not judge it.
      const nowMs = this.clock.wallMs();
      const skewMs = this.limits.tokenSkewSecs * 1000;
      const within = Date.parse(cert.valid_from) - skewMs <= nowMs && nowMs <= Date.parse(cert.valid_to) + skewMs;
      if (!within) return 'certificate';
      const presented = [normalizeThumbprint(cert.fingerprint256 ?? '')];
      if (this.cache.thumbprintSha1) presented.push(normalizeThumbprint(cert.fingerprint ?? ''));
      const allowed = [auth.primaryThumbprint, auth.secondaryThumbprint].filter((t): t is string => t !== undefined);
      return allowed.some((t) => presented.includes(t)) ? null : 'certificate';
    }
    // x509-ca: the TLS layer verified the chain (and its dates) against the trust bundle and nothing else
    // (hub/server.ts); with no bundle there is nothing to chain to, whatever the socket says.
    if (this.cache.trustBundle === null) return 'certificate';
    return socket.authorized && cert.subject?.CN === clientId ? null : 'certificate';
  }
}
