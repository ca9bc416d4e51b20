import type http from 'node:http';
import { TLSSocket } from 'node:tls';
import { certificateValid, parseSas, signedByOneOf } from './iothub-emulator-auth.js';
import { keysOf, type ModuleIdentity, type Registry } from './iothub-emulator-registry.js';
import { moduleJson } from './iothub-emulator-scope-api.js';

/**
 * IoT Hub's registry API for module identities (https://learn.microsoft.com/rest/api/iothub/service/modules),
 * as far as a device manages its own modules with it (what IoT Edge's identity service does for `$edgeHub`):
 *
 *   GET /devices/<d>/modules/<m>?api-version=...   -> 200 Module JSON (with its etag), or 404 ModuleNotFound
 *   PUT /devices/<d>/modules/<m>?api-version=...   body: {deviceId, moduleId, managedBy, authentication}
 *     no If-Match: create; 409 ModuleAlreadyExistsOnDevice if it exists
 *     If-Match: "<etag>" or "*": update; 412 PreconditionFailed on another etag, 404 if there is none
 *
 * Authorisation: a SAS token for `<hub>/devices/<d>` signed with the device's own key (device-scoped access
 * reaches that device's modules only), or, with no Authorization header, an X.509 device's client certificate
 * on the TLS connection, judged as at CONNECT (aziot-identityd's way for an X.509 IoT Edge device). Errors
 * carry IoT Hub's body, `{"Message": "ErrorCode:<name>;<text>"}`.
 */

/** A registry request body larger than this is not a module. */
const MODULE_REQUEST_BYTES_MAX = 64 * 1024;
const ROUTE = /^\/devices\/([^/]+)\/modules\/([^/]+)$/;

export interface ModuleRequest {
  method: string;
  deviceId: string;
  moduleId: string;
  ifMatch: string | undefined;
  status: number;
}

export interface ModulesApiOptions {
  hostNames: ReadonlySet<string>;
  /** Every request served, for tests that count PUTs. */
  requests: ModuleRequest[];
  /** Per request: an answer to send instead (401, 403, 503 for a client's error handling). */
  onRequest?: (method: string, path: string) => Answer | undefined;
}

export type Answer = { status: number; body: unknown };

/** True when the request is for the module registry (the rest of the HTTPS API is the device-scope one). */
export function isModulesRequest(req: http.IncomingMessage): boolean {
  return ROUTE.test(new URL(req.url ?? '/', 'https://emulator').pathname) && req.method !== 'POST';
}

export function modulesApiHandler(registry: Registry, options: ModulesApiOptions) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= MODULE_REQUEST_BYTES_MAX) chunks.push(chunk);
    });
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'https://emulator');
      const match = ROUTE.exec(url.pathname)!;
      const deviceId = decodeURIComponent(match[1]!);
      const moduleId = decodeURIComponent(match[2]!);
      const ifMatch = req.headers['if-match'];
      const answer =
        options.onRequest?.(req.method ?? '', url.pathname) ??
        (bytes > MODULE_REQUEST_BYTES_MAX
          ? error(413, 'MessageTooLarge', 'request body too large')
          : route(registry, options, req, { deviceId, moduleId, ifMatch }, Buffer.concat(chunks).toString()));
      options.requests.push({ method: req.method ?? '', deviceId, moduleId, ifMatch, status: answer.status });
      const etag = (answer.body as { etag?: unknown } | null)?.etag;
      res.writeHead(answer.status, {
        'content-type': 'application/json; charset=utf-8',
        ...(typeof etag === 'string' ? { etag: `"${etag}"` } : {}),
      });
      res.end(JSON.stringify(answer.body));
    });
  };
}

interface Target {
  deviceId: string;
  moduleId: string;
  ifMatch: string | undefined;
}

function route(
  registry: Registry,
  options: ModulesApiOptions,
  req: http.IncomingMessage,
  target: Target,
  text: string,
): Answer {
  if (new URL(req.url ?? '/', 'https://emulator').searchParams.get('api-version') === null) {
    return error(400, 'InvalidProtocolVersion', 'api-version is required');
  }
  if (!authorized(registry, options.hostNames, target.deviceId, req)) {
    return error(401, 'IotHubUnauthorizedAccess', 'Unauthorized');
  }
  const existing = registry.module(target.deviceId, target.moduleId);
  if (req.method === 'GET') {
    return existing === undefined
      ? error(404, 'ModuleNotFound', `module "${target.moduleId}" of "${target.deviceId}" not found`)
      : { status: 200, body: moduleJson(existing) };
  }
  if (req.method !== 'PUT') return error(405, 'MethodNotAllowed', `${req.method} is not served`);
  const keys = keysFromBody(text, target);
  if (typeof keys === 'string') return error(400, 'ArgumentInvalid', keys);
  return put(registry, target, existing, keys);
}

function put(registry: Registry, target: Target, existing: ModuleIdentity | undefined, keys: [string, string]): Answer {
  const { deviceId, moduleId, ifMatch } = target;
  if (ifMatch === undefined) {
    if (existing !== undefined) return error(409, 'ModuleAlreadyExistsOnDevice', `"${moduleId}" exists`);
    registry.addModule(deviceId, moduleId, { primaryKey: keys[0], secondaryKey: keys[1] });
    return { status: 200, body: moduleJson(registry.module(deviceId, moduleId)!) };
  }
  if (existing === undefined) return error(404, 'ModuleNotFound', `module "${moduleId}" of "${deviceId}" not found`);
  if (ifMatch !== '*' && ifMatch !== `"${existing.etag}"`) {
    return error(412, 'PreconditionFailed', `etag ${ifMatch} is not the module's`);
  }
  return { status: 200, body: moduleJson(registry.setModuleKeys(deviceId, moduleId, keys[0], keys[1])) };
}

/** The body's keys; a string says what is wrong with it. */
function keysFromBody(text: string, target: Target): [string, string] | string {
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return 'the body is not JSON';
  }
  if (body.deviceId !== target.deviceId || body.moduleId !== target.moduleId) {
    return 'deviceId and moduleId must match the URL';
  }
  const auth = body.authentication as { type?: unknown; symmetricKey?: Record<string, unknown> } | undefined;
  const primary = auth?.symmetricKey?.primaryKey;
  const secondary = auth?.symmetricKey?.secondaryKey;
  if (auth?.type !== 'sas' || typeof primary !== 'string' || typeof secondary !== 'string') {
    return 'authentication must be {type: "sas", symmetricKey: {primaryKey, secondaryKey}}';
  }
  return [primary, secondary];
}

/**
 * A device-scoped SAS token of the module's own device, signed with one of that device's keys; or, without
 * one, that device's own client certificate.
 */
function authorized(
  registry: Registry,
  hostNames: ReadonlySet<string>,
  deviceId: string,
  req: http.IncomingMessage,
): boolean {
  const device = registry.device(deviceId);
  if (device === undefined || device.status !== 'enabled') return false;
  const header = req.headers.authorization;
  if (header === undefined) {
    return req.socket instanceof TLSSocket && certificateValid(device.authentication, req.socket, deviceId);
  }
  const token = parseSas(header);
  if (token === null) return false;
  const slash = token.resource.indexOf('/');
  return (
    hostNames.has(token.resource.slice(0, slash)) &&
    token.resource.slice(slash) === `/devices/${deviceId}` &&
    signedByOneOf(token, keysOf(device.authentication))
  );
}

function error(status: number, name: string, text: string): Answer {
  const body = { Message: `ErrorCode:${name};${text}`, ExceptionMessage: `TimeStamp:${new Date().toISOString()}` };
  return { status, body };
}
