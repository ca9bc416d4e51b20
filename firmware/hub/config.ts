import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { collect, ConfigError, throwCollected } from '../config/errors.js';
import { displayPath } from '../config/layers.js';
import { ConfigNode } from '../config/node.js';
import { fieldsOf, integerOption, optionSpec } from '../config/schema.js';
import { RouteError } from '../router/condition.js';
import { parseMethodAllow, type MethodAllowRule } from './method-acl.js';
import { parseRoute } from '../router/routes.js';

/**
 * The board.json `hub` and `routes` sections, validated with the one error format of firmware/config
 * (`<file>: <JSON path>: expected ..., got ...`); every option, its default and range is in the schema table
 * (firmware/config/schema-hub.ts) and the reference generated from it (firmware/config/REFERENCE.md).
 */

export interface ListenerConfig {
  host: string;
  /** 0 picks a free port (tests). */
  port: number;
}

export interface TlsListenerConfig extends ListenerConfig {
  /** Absolute path of the PEM server certificate chain (leaf first), read at start. */
  certPath: string;
  /** Absolute path of its PEM key. */
  keyPath: string;
}

export interface HubConfig {
  /** The board file the section came from, as shown in errors. */
  boardFile: string;
  tcp: ListenerConfig | null;
  tls: TlsListenerConfig | null;
  /** Host names children dial; accepted as SAS audiences besides the hub host from the uplink and the scope. */
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
  /** Furthest a SAS token's expiry may lie ahead, seconds. Default 1 day. */
  tokenLifetimeSecsMax: number;
  authFailuresMax: number;
  authFailureWindowSecs: number;
  /** How long a direct method may take before the caller gets 504, seconds. Default 30. */
  methodTimeoutSecs: number;
  /** Sockets open that have not authenticated yet, in all. Default 128. */
  pendingConnectionsMax: number;
  /** Sockets open that have not authenticated yet, from one address. Default 32. */
  pendingPerAddressMax: number;
  /** From accept to CONNACK (TLS handshake included), seconds. Default 5. */
  connectTimeoutSecs: number;
  /** Child-to-child direct methods a caller may make: none unless allowed (see method-acl.ts). */
  methods: { allow: MethodAllowRule[] };
  /** Routes by name, in IoT Edge syntax (see routes.ts). Default: everything to $upstream. */
  routes: Record<string, string>;
}

export const DEFAULT_ROUTES: Record<string, string> = { upstream: 'FROM /messages/* INTO $upstream' };
/** Routes one board may declare; each is evaluated per message. */
export const ROUTES_MAX = 64;
/** Names one gateway answers to; each is compared on every SAS login. */
const HOST_NAMES_MAX = 16;
const HOST_NAME = /^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/;
const LIMIT_NAMES = [
  'clientsMax',
  'messageBytesMax',
  'inflightMax',
  'publishRatePerSec',
  'publishBurst',
  'identityRefreshSecs',
  'tokenSkewSecs',
  'tokenLifetimeSecsMax',
  'authFailuresMax',
  'authFailureWindowSecs',
  'methodTimeoutSecs',
  'pendingConnectionsMax',
  'pendingPerAddressMax',
  'connectTimeoutSecs',
] as const;
type LimitName = (typeof LIMIT_NAMES)[number];

/** Where a listener binds when board.json does not say: loopback, so nothing is exposed by accident. */
const LISTEN_HOST_DEFAULT = '127.0.0.1';

/** `false` (or null) turns a listener off; a missing one is on only if `onByDefault`. */
function listener(node: ConfigNode, section: 'tcp' | 'tls', onByDefault: boolean): ListenerConfig | null {
  if (node.value === false || node.value === null || (node.missing && !onByDefault)) return null;
  const portPath = `hub.${section}.port`;
  if (node.missing) return { host: LISTEN_HOST_DEFAULT, port: optionSpec(portPath).int!.default! };
  if (typeof node.value !== 'object' || Array.isArray(node.value)) node.fail('an object or false');
  node.keys(fieldsOf(`hub.${section}`));
  return {
    host: node.field('host').string({ default: LISTEN_HOST_DEFAULT }),
    port: integerOption(node.field('port'), portPath),
  };
}

function tlsListener(node: ConfigNode, baseDir: string): TlsListenerConfig | null {
  const base = listener(node, 'tls', false);
  if (base === null) return null;
  // Against board.json's folder, not the working directory: systemd starts the gateway from /.
  const path = (key: string) => resolve(baseDir, node.field(key).string({ describe: 'a PEM file path' }));
  return { ...base, certPath: path('certPath'), keyPath: path('keyPath') };
}

/** Each route is checked on its own, so one bad route does not hide the next. */
function routes(node: ConfigNode, gatewayId: string | undefined, errors: ConfigError[]): Record<string, string> {
  if (node.missing) return { ...DEFAULT_ROUTES };
  const names = node.keys();
  if (names.length > ROUTES_MAX) node.fail(`at most ${ROUTES_MAX} routes`);
  for (const name of names) {
    collect(errors, () => {
      const routeNode = node.field(name);
      const text = routeNode.string({ describe: 'a route in IoT Edge syntax (FROM ... INTO ...)' });
      try {
        parseRoute(name, text, gatewayId);
      } catch (err) {
        if (!(err instanceof RouteError)) throw err;
        // The route's own text is the "got" part; what the parser found is said inside the expectation.
        const problem = err.message.replace(/^route "[^"]*":? /, '').replace(/, got (".*")$/, ' (found $1)');
        routeNode.fail(`a route in IoT Edge syntax: ${problem}`);
      }
    });
  }
  return Object.fromEntries(names.map((name) => [name, node.field(name).value as string]));
}

/**
 * `sections` holds board.json's `hub` and `routes` values; `file` is the board file (errors name it, relative
 * TLS paths resolve against its folder); `gatewayId` lets routes name the gateway's own modules. Every field
 * is checked even after one failed; the problems are thrown together.
 */
export function parseHubConfig(
  sections: { hub?: unknown; routes?: unknown },
  file = 'board.json',
  gatewayId?: string,
): HubConfig {
  const shown = displayPath(resolve(file));
  const root = new ConfigNode({ hub: sections.hub, routes: sections.routes }, '$', () => shown);
  const errors: ConfigError[] = [];
  const hub = root.field('hub');
  if (!hub.missing) hub.record();
  collect(errors, () => hub.missing || hub.keys(fieldsOf('hub')));
  const section = hub.missing ? new ConfigNode({}, '$.hub', () => shown) : hub;
  const hostNode = section.field('hostNames');
  const hostNames = collect(errors, () =>
    hostNode.missing
      ? ['localhost']
      : hostNode
          .items(`a list of 1 to ${HOST_NAMES_MAX} host names`, 1, HOST_NAMES_MAX)
          .map((item) => item.string({ pattern: HOST_NAME, describe: 'a host name, optionally with :port' })),
  );
  const limits = {} as Record<LimitName, number>;
  for (const name of LIMIT_NAMES) {
    limits[name] = collect(errors, () => integerOption(section.field(name), `hub.${name}`))!;
  }
  const config = {
    boardFile: shown,
    tcp: collect(errors, () => listener(section.field('tcp'), 'tcp', true))!,
    tls: collect(errors, () => tlsListener(section.field('tls'), dirname(resolve(file))))!,
    hostNames: hostNames!,
    ...limits,
    methods: { allow: collect(errors, () => parseMethodAllow(section.field('methods'))) ?? [] },
    routes: collect(errors, () => routes(root.field('routes'), gatewayId, errors))!,
  };
  throwCollected(errors);
  return config;
}

/** PEM files are a chain of a few certificates or one key; anything larger is not what the field names. */
const TLS_FILE_BYTES_MAX = 1024 * 1024;

/** Reads the TLS listener's chain and key; a failure names the board file, the field and the path. */
export async function readHubTls(config: HubConfig): Promise<{ cert: string; key: string } | null> {
  const tls = config.tls;
  if (tls === null) return null;
  const read = async (field: 'certPath' | 'keyPath') => {
    const where = { file: config.boardFile, jsonPath: `$.hub.tls.${field}` };
    let bytes: Buffer;
    try {
      bytes = await readFile(tls[field]);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw new ConfigError('UNREADABLE', where, 'a readable PEM file', `${tls[field]}: ${code}`, { cause: err });
    }
    if (bytes.length > TLS_FILE_BYTES_MAX) {
      const expected = `a PEM file of at most ${TLS_FILE_BYTES_MAX} bytes`;
      throw new ConfigError('INVALID', where, expected, `${tls[field]}: ${bytes.length} bytes`);
    }
    const text = bytes.toString('utf8');
    if (!text.includes('-----BEGIN ')) {
      throw new ConfigError('INVALID', where, 'a PEM file (-----BEGIN ...)', `${tls[field]}: no PEM block`);
    }
    return text;
  };
  return { cert: await read('certPath'), key: await read('keyPath') };
}
