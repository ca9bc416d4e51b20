import type http from 'node:http';
import { parseSas, signedByOneOf } from './iothub-emulator-auth.js';
import {
  EDGE_HUB_MODULE_ID,
  keysOf,
  type DeviceIdentity,
  type ModuleIdentity,
  type Registry,
} from './iothub-emulator-registry.js';

/**
 * IoT Hub's device-scope API, the one edgeHub reads its children from (Azure/iotedge
 * NestedDeviceScopeApiClient, ScopeResult, NestedScopeRequest, IdentityOnBehalfOfRequest):
 *
 *   POST /devices/<actor>/modules/$edgeHub/devicesAndModulesInTargetDeviceScope?api-version=2020-06-30-preview
 *     Authorization: a SAS token of the actor's $edgeHub module
 *     {"pageSize": n, "continuationLink": "...", "authChain": "<target>;...;<actor>"}
 *   -> {"devices": [Device...], "modules": [Module...], "continuationLink": "..." | null}
 *
 *   POST /devices/<actor>/modules/$edgeHub/getDeviceAndModuleOnBehalfOf?api-version=2020-06-30-preview
 *     {"targetDeviceId": "...", "targetModuleId": "...", "authChain": "..."}   (one identity, same answer shape)
 *
 * Devices and modules carry the service API's field names. An error answers with IoT Hub's error body,
 * `{"Message": "ErrorCode:<name>;<text>", "ExceptionMessage": "..."}`.
 */

export const SCOPE_API_VERSION = '2020-06-30-preview';
/** edgeHub's NestedDeviceScopeApiClient refuses a batch size over this; so does the emulator. */
const SCOPE_PAGE_SIZE_MAX = 1000;
/** A request body larger than this is not a scope request. */
const SCOPE_REQUEST_BYTES_MAX = 64 * 1024;
const ROUTE = new RegExp(
  '^/devices/([^/]+)/modules/([^/]+)/' + '(devicesAndModulesInTargetDeviceScope|getDeviceAndModuleOnBehalfOf)$',
);

export interface ScopeApiOptions {
  /** Serve at most this many identities per page whatever the client asks (IoT Hub may send fewer). */
  pageSizeMax: number;
  hostNames: ReadonlySet<string>;
  /** Called per request, for tests that count or fail calls. */
  onRequest?: (path: string) => { status: number; body: unknown } | undefined;
}

export function scopeApiHandler(registry: Registry, options: ScopeApiOptions) {
  return (req: http.IncomingMessage, res: http.ServerResponse): void => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes <= SCOPE_REQUEST_BYTES_MAX) chunks.push(chunk);
    });
    req.on('end', () => {
      const answer =
        bytes > SCOPE_REQUEST_BYTES_MAX
          ? error(413, 'MessageTooLarge', 'request body too large')
          : route(registry, options, req, Buffer.concat(chunks).toString());
      res.writeHead(answer.status, { 'content-type': 'application/json; charset=utf-8' });
      res.end(JSON.stringify(answer.body));
    });
  };
}

type Answer = { status: number; body: unknown };

function route(registry: Registry, options: ScopeApiOptions, req: http.IncomingMessage, text: string): Answer {
  const url = new URL(req.url ?? '/', 'https://emulator');
  const injected = options.onRequest?.(url.pathname);
  if (injected !== undefined) return injected;
  const match = ROUTE.exec(url.pathname);
  if (req.method !== 'POST' || match === null) return error(404, 'NotFound', `no route ${req.method} ${url.pathname}`);
  if (url.searchParams.get('api-version') !== SCOPE_API_VERSION) {
    return error(400, 'InvalidProtocolVersion', `api-version must be ${SCOPE_API_VERSION}`);
  }
  const actorId = decodeURIComponent(match[1]!);
  const actorModule = decodeURIComponent(match[2]!);
  if (!authorized(registry, options.hostNames, actorId, actorModule, req.headers.authorization)) {
    return error(401, 'IotHubUnauthorizedAccess', 'Unauthorized');
  }
  let body: Record<string, unknown>;
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return error(400, 'ArgumentInvalid', 'the body is not JSON');
  }
  if (typeof body.authChain !== 'string' || body.authChain === '') {
    return error(400, 'ArgumentNull', 'authChain is required');
  }
  const target = targetOf(registry, actorId, body.authChain);
  if (target === null) {
    return error(401, 'IotHubUnauthorizedAccess', `authChain "${body.authChain}" is not valid for "${actorId}"`);
  }
  return match[3] === 'getDeviceAndModuleOnBehalfOf'
    ? onBehalfOf(registry, target, body)
    : page(registry, options.pageSizeMax, target, body);
}

/** The actor must be an enabled edge device's $edgeHub, proven by a token signed with that module's key. */
function authorized(
  registry: Registry,
  hostNames: ReadonlySet<string>,
  actorId: string,
  actorModule: string,
  header: string | undefined,
): boolean {
  if (actorModule !== EDGE_HUB_MODULE_ID || header === undefined) return false;
  const device = registry.device(actorId);
  const edgeHub = registry.module(actorId, EDGE_HUB_MODULE_ID);
  if (device === undefined || edgeHub === undefined) return false;
  if (device.status !== 'enabled' || !device.capabilities.iotEdge) return false;
  const token = parseSas(header);
  if (token === null) return false;
  const slash = token.resource.indexOf('/');
  const host = token.resource.slice(0, slash);
  return (
    hostNames.has(host) &&
    token.resource.slice(slash) === `/devices/${actorId}/modules/${EDGE_HUB_MODULE_ID}` &&
    signedByOneOf(token, keysOf(edgeHub.authentication))
  );
}

/**
 * The auth chain names the target edge device first and the actor last, each one a child of the next; a
 * non-nested gateway asks for itself, `"<gw>"`.
 */
function targetOf(registry: Registry, actorId: string, authChain: string): string | null {
  const hops = authChain.split(';');
  if (hops.at(-1) !== actorId) return null;
  for (let i = 0; i + 1 < hops.length; i += 1) if (!registry.isChildOf(hops[i]!, hops[i + 1]!)) return null;
  return hops[0]!;
}

function page(registry: Registry, pageSizeMax: number, target: string, body: Record<string, unknown>): Answer {
  const pageSize = body.pageSize;
  if (typeof pageSize !== 'number' || !Number.isInteger(pageSize) || pageSize < 1 || pageSize > SCOPE_PAGE_SIZE_MAX) {
    return error(400, 'ArgumentInvalid', `pageSize must be an integer from 1 to ${SCOPE_PAGE_SIZE_MAX}`);
  }
  let offset = 0;
  if (body.continuationLink !== undefined && body.continuationLink !== null) {
    const parsed = parseContinuation(String(body.continuationLink), target);
    if (parsed === null) return error(400, 'ArgumentInvalid', 'continuationLink was not issued for this scope');
    offset = parsed;
  }
  const scope = registry.targetScope(target);
  const all: (DeviceIdentity | ModuleIdentity)[] = [...scope.devices, ...scope.modules];
  const slice = all.slice(offset, offset + Math.min(pageSize, pageSizeMax));
  const next = offset + slice.length;
  return {
    status: 200,
    body: {
      devices: slice.filter((i): i is DeviceIdentity => !('moduleId' in i)).map(deviceJson),
      modules: slice.filter((i): i is ModuleIdentity => 'moduleId' in i).map(moduleJson),
      continuationLink: next < all.length ? continuation(target, next) : null,
    },
  };
}

function onBehalfOf(registry: Registry, target: string, body: Record<string, unknown>): Answer {
  if (typeof body.targetDeviceId !== 'string') return error(400, 'ArgumentNull', 'targetDeviceId is required');
  const scope = registry.targetScope(target);
  const device = scope.devices.find((d) => d.deviceId === body.targetDeviceId);
  const moduleId = body.targetModuleId;
  const modules =
    typeof moduleId === 'string'
      ? scope.modules.filter((m) => m.deviceId === body.targetDeviceId && m.moduleId === moduleId)
      : [];
  if (device === undefined) {
    return error(404, 'DeviceNotFound', `"${body.targetDeviceId}" is not in the scope of "${target}"`);
  }
  const answer = { devices: [deviceJson(device)], modules: modules.map(moduleJson), continuationLink: null };
  return { status: 200, body: answer };
}

/** Opaque to clients, as IoT Hub's is: a relative link naming the scope and where the next page starts. */
function continuation(target: string, offset: number): string {
  const token = Buffer.from(JSON.stringify({ target, offset })).toString('base64url');
  const path = `/devices/${encodeURIComponent(target)}/modules/${EDGE_HUB_MODULE_ID}`;
  return `${path}/devicesAndModulesInTargetDeviceScope?continuationToken=${token}`;
}

function parseContinuation(link: string, target: string): number | null {
  try {
    const token = new URL(link, 'https://emulator').searchParams.get('continuationToken') ?? '';
    const parsed = JSON.parse(Buffer.from(token, 'base64url').toString()) as { target?: unknown; offset?: unknown };
    return parsed.target === target && typeof parsed.offset === 'number' ? parsed.offset : null;
  } catch {
    return null;
  }
}

export function deviceJson(device: DeviceIdentity): Record<string, unknown> {
  return {
    deviceId: device.deviceId,
    generationId: device.generationId,
    etag: device.etag,
    status: device.status,
    authentication: device.authentication,
    capabilities: device.capabilities,
    ...(device.deviceScope === undefined ? {} : { deviceScope: device.deviceScope }),
    parentScopes: device.parentScopes,
  };
}

export function moduleJson(module: ModuleIdentity): Record<string, unknown> {
  return {
    deviceId: module.deviceId,
    moduleId: module.moduleId,
    generationId: module.generationId,
    etag: module.etag,
    managedBy: module.managedBy,
    authentication: module.authentication,
  };
}

function error(status: number, name: string, text: string): Answer {
  const body = { Message: `ErrorCode:${name};${text}`, ExceptionMessage: `TimeStamp:${new Date().toISOString()}` };
  return { status, body };
}
