import { parseMethodAllow, type MethodAllowRule } from './method-acl.js';

/**
 * The board.json `hub` and `routes` sections, validated with errors that name the file and the JSON path.
 *
 * ```json
 * "hub": {
 *   "tcp": { "host": "127.0.0.1", "port": 1883 },            // or false: no plain listener
 *   "tls": { "host": "0.0.0.0", "port": 8883, "certPath": "/etc/outpost/hub.crt", "keyPath": "/etc/outpost/hub.key" },
 *   "hostNames": ["gateway.local"],                           // what children put in GatewayHostName / SAS audience
 *   "clientsMax": 100, "messageBytesMax": 262144, "inflightMax": 16,
 *   "publishRatePerSec": 50, "publishBurst": 100,
 *   "identityRefreshSecs": 3600, "tokenSkewSecs": 300, "tokenLifetimeSecsMax": 86400,
 *   "authFailuresMax": 5, "authFailureWindowSecs": 60,
 *   "methodTimeoutSecs": 30,
 *   "pendingConnectionsMax": 128, "pendingPerAddressMax": 32, "connectTimeoutSecs": 5,
 *   "methods": { "allow": { "panel": ["pump-1/start", "pump-1/stop"], "*": ["logger/*"] } }
 * },
 * "routes": { "toCloud": "FROM /messages/* INTO $upstream" }
 * ```
 */

export interface ListenerConfig {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface TlsListenerConfig extends ListenerConfig {
  /** PEM server certificate chain (leaf first), read at start. */
  certPath: string;
  keyPath: string;
}

export interface HubConfig {
  tcp: ListenerConfig | null;
  tls: TlsListenerConfig | null;
  /** Host names children dial; accepted as SAS audiences besides the hub host from the scope. */
  hostNames: string[];
  /** Connected children at once, clients. Default 100. */
  clientsMax: number;
  /** Largest PUBLISH (topic + payload), bytes. Default 256 KiB, IoT Hub's device-to-cloud limit. */
  messageBytesMax: number;
  /** QoS 1 publishes of one child awaiting durability at once, messages. Default 16. */
  inflightMax: number;
  /** Sustained publishes per child, messages per second. Default 50. */
  publishRatePerSec: number;
  /** Publishes a child may send in a burst above the rate, messages. Default 100. */
  publishBurst: number;
  /** Period of the identity scope refresh while online, seconds. Default 3600. */
  identityRefreshSecs: number;
  tokenSkewSecs: number;
  /**
   * Furthest ahead a child's SAS token may expire, seconds. Default 86,400: the device SDKs make 1-hour
   * tokens and renew them, so a day leaves room for hand-made ones while a leaked `se=9999999999` is refused.
   */
  tokenLifetimeSecsMax: number;
  authFailuresMax: number;
  authFailureWindowSecs: number;
  /** How long a direct method may take before the caller gets 504, seconds. Default 30. */
  methodTimeoutSecs: number;
  /** Connections that have not authenticated yet, at once, sockets. Default 128. */
  pendingConnectionsMax: number;
  /** Connections from one remote address that have not authenticated yet, sockets. Default 32. */
  pendingPerAddressMax: number;
  /** From accept to an accepted CONNECT (TLS handshake included), else the socket is closed, seconds. Default 5. */
  connectTimeoutSecs: number;
  /** Child-to-child direct methods a caller may make: none unless allowed (see method-acl.ts). */
  methods: { allow: MethodAllowRule[] };
  /** Routes by name, in IoT Edge syntax (see routes.ts). Default: everything to $upstream. */
  routes: Record<string, string>;
}

export class HubConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HubConfigError';
  }
}

const LIMITS = {
  clientsMax: [1, 10_000, 100, 'clients'],
  messageBytesMax: [1_024, 256 * 1024, 256 * 1024, 'bytes'],
  inflightMax: [1, 1_000, 16, 'messages'],
  publishRatePerSec: [1, 100_000, 50, 'messages/s'],
  publishBurst: [1, 100_000, 100, 'messages'],
  identityRefreshSecs: [60, 7 * 86_400, 3_600, 'seconds'],
  tokenSkewSecs: [0, 3_600, 300, 'seconds'],
  tokenLifetimeSecsMax: [60, 365 * 86_400, 86_400, 'seconds'],
  authFailuresMax: [1, 1_000, 5, 'attempts'],
  authFailureWindowSecs: [1, 86_400, 60, 'seconds'],
  methodTimeoutSecs: [1, 300, 30, 'seconds'],
  pendingConnectionsMax: [1, 10_000, 128, 'sockets'],
  pendingPerAddressMax: [1, 10_000, 32, 'sockets'],
  connectTimeoutSecs: [1, 60, 5, 'seconds'],
} as const;
type LimitName = keyof typeof LIMITS;

export const DEFAULT_ROUTES: Record<string, string> = { upstream: 'FROM /messages/* INTO $upstream' };
/** Routes one board may declare; each is evaluated per message. */
export const ROUTES_MAX = 64;

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function listener(value: unknown, at: string, file: string, fallback: ListenerConfig | null): ListenerConfig | null {
  const bad = (msg: string) => new HubConfigError(`${file}: ${at}${msg}`);
  if (value === undefined) return fallback;
  if (value === false || value === null) return null;
  if (!isObject(value)) throw bad(' must be an object or false');
  const host = value.host ?? fallback?.host ?? '127.0.0.1';
  const port = value.port ?? fallback?.port;
  if (typeof host !== 'string' || host.length === 0) throw bad('.host must be a non-empty string');
  if (!Number.isInteger(port) || (port as number) < 0 || (port as number) > 65_535) throw bad(`.port must be an integer from 0 to 65535, got ${JSON.stringify(port)}`);
  return { host, port: port as number };
}

function tlsListener(value: unknown, file: string): TlsListenerConfig | null {
  const base = listener(value, 'hub.tls', file, null);
  if (base === null) return null;
  const v = value as Json;
  for (const key of ['certPath', 'keyPath']) {
    if (typeof v[key] !== 'string' || (v[key] as string).length === 0) throw new HubConfigError(`${file}: hub.tls.${key} must be a file path`);
  }
  return { ...base, certPath: v.certPath as string, keyPath: v.keyPath as string };
}

function routes(value: unknown, file: string): Record<string, string> {
  if (value === undefined) return { ...DEFAULT_ROUTES };
  if (!isObject(value)) throw new HubConfigError(`${file}: routes must be an object of name → route`);
  const entries = Object.entries(value);
  if (entries.length > ROUTES_MAX) throw new HubConfigError(`${file}: routes has ${entries.length} routes, at most ${ROUTES_MAX}`);
  for (const [name, route] of entries) {
    if (typeof route !== 'string') throw new HubConfigError(`${file}: routes.${name} must be a string`);
  }
  return value as Record<string, string>;
}

/** `sections` is the parsed board.json (or just its `hub` and `routes`); `file` names it in errors. */
export function parseHubConfig(sections: { hub?: unknown; routes?: unknown }, file = 'board.json'): HubConfig {
  const hub = sections.hub ?? {};
  if (!isObject(hub)) throw new HubConfigError(`${file}: hub must be an object`);
  const known = new Set(['tcp', 'tls', 'hostNames', 'methods', ...Object.keys(LIMITS)]);
  for (const key of Object.keys(hub)) if (!known.has(key)) throw new HubConfigError(`${file}: hub.${key} is not a known option`);
  const hostNames = hub.hostNames ?? ['localhost'];
  if (!Array.isArray(hostNames) || hostNames.length === 0 || !hostNames.every((h) => typeof h === 'string' && /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/.test(h))) {
    throw new HubConfigError(`${file}: hub.hostNames must be a non-empty array of host names`);
  }
  const limits = {} as Record<LimitName, number>;
  for (const [name, [min, max, fallback, unit]] of Object.entries(LIMITS) as Array<[LimitName, (typeof LIMITS)[LimitName]]>) {
    const value = hub[name] ?? fallback;
    if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
      throw new HubConfigError(`${file}: hub.${name} must be an integer from ${min} to ${max} ${unit}, got ${JSON.stringify(value)}`);
    }
    limits[name] = value as number;
  }
  return {
    tcp: listener(hub.tcp, 'hub.tcp', file, { host: '127.0.0.1', port: 1883 }),
    tls: tlsListener(hub.tls, file),
    hostNames: hostNames as string[],
    ...limits,
    methods: { allow: parseMethodAllow(hub.methods, file) },
    routes: routes(sections.routes, file),
  };
}
