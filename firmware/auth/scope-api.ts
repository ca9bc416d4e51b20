import https from 'node:https';
import { makeSasToken } from './sas.js';
import { SCOPE_IDENTITIES_MAX } from './identity.js';

/**
 * IoT Hub's device-scope API, as edgeHub reads its children with it (Azure/iotedge NestedDeviceScopeApiClient):
 *
 *   POST https://<hub>/devices/<gw>/modules/$edgeHub/devicesAndModulesInTargetDeviceScope
 *        ?api-version=2020-06-30-preview
 *   Authorization: SharedAccessSignature for <hub>/devices/<gw>/modules/$edgeHub, signed with the module's key
 *   {"pageSize": n, "continuationLink": "<from the last page>", "authChain": "<gw>"}
 *   -> {"devices": [...], "modules": [...], "continuationLink": "..." | null}
 *
 * Node's own https with the uplink's CA; no HTTP dependency. Every page is read (a missing page would revoke
 * the children on it), each request is bounded in time and bytes, and the whole read in pages and identities.
 */

export const SCOPE_API_VERSION = '2020-06-30-preview';
/** Identities asked per page; the API takes 1 to 1000, and a page of 100 stays well under a megabyte. */
const SCOPE_PAGE_SIZE = 100;
/**
 * Pages one read may take: enough for SCOPE_IDENTITIES_MAX at the page size, twice over for a hub that sends
 * smaller pages than asked. A hub that keeps sending continuation links past that is refused, not followed.
 */
const SCOPE_PAGES_MAX = 2 * Math.ceil(SCOPE_IDENTITIES_MAX / SCOPE_PAGE_SIZE);
/** One page's answer, bytes: a page of 100 identities is about 60 KB. */
const SCOPE_PAGE_BYTES_MAX = 4 * 1024 * 1024;
/** One request's limit, ms: connect, TLS and answer on a slow cellular link. */
export const SCOPE_REQUEST_TIMEOUT_MS = 20_000;
/** The gateway itself and IoT Edge's two system modules, listed in its own scope besides its children. */
const SCOPE_OWN_IDENTITIES = 3;
/** Lifetime of the token each read signs, seconds; a read never takes this long. */
const SCOPE_TOKEN_LIFETIME_SECS = 3_600;

export interface DeviceScopeSource {
  /** IoT Hub's host, `host` or `host:port`. */
  hostName: string;
  gatewayId: string;
  /** The `$edgeHub` module's key (base64). */
  edgeHubKey: string;
  /** PEM CA certificate(s) of the hub; default: the system's roots. */
  ca?: string;
}

/** The fields outpost reads of the service API's Device and Module JSON; anything else is ignored. */
export interface ScopeApiDevice {
  deviceId?: unknown;
  moduleId?: unknown;
  generationId?: unknown;
  etag?: unknown;
  status?: unknown;
  authentication?: unknown;
  capabilities?: unknown;
  parentScopes?: unknown;
}

export interface ScopeApiResult {
  devices: ScopeApiDevice[];
  modules: ScopeApiDevice[];
}

export class ScopeApiError extends Error {
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'ScopeApiError';
  }
}

/** Reads every page of the gateway's device scope. */
export async function fetchDeviceScope(source: DeviceScopeSource, nowMs = Date.now()): Promise<ScopeApiResult> {
  const result: ScopeApiResult = { devices: [], modules: [] };
  let continuationLink: string | null = null;
  for (let page = 0; page < SCOPE_PAGES_MAX; page += 1) {
    const body: Record<string, unknown> = { pageSize: SCOPE_PAGE_SIZE, authChain: source.gatewayId };
    if (continuationLink !== null) body.continuationLink = continuationLink;
    const answer = await post(source, body, nowMs);
    const devices = listOf(answer, 'devices');
    const modules = listOf(answer, 'modules');
    result.devices.push(...devices);
    result.modules.push(...modules);
    if (result.devices.length + result.modules.length > SCOPE_IDENTITIES_MAX + SCOPE_OWN_IDENTITIES) {
      throw new ScopeApiError(`the device scope holds more than ${SCOPE_IDENTITIES_MAX} identities`);
    }
    const next = answer.continuationLink;
    if (next === null || next === undefined || next === '') return result;
    if (typeof next !== 'string') throw new ScopeApiError('continuationLink is not a string');
    continuationLink = next;
  }
  throw new ScopeApiError(`the device scope did not end within ${SCOPE_PAGES_MAX} pages`);
}

function listOf(answer: Record<string, unknown>, key: 'devices' | 'modules'): ScopeApiDevice[] {
  const list = answer[key];
  if (list === null || list === undefined) return [];
  if (!Array.isArray(list)) throw new ScopeApiError(`"${key}" is not a list`);
  return list.filter((item): item is ScopeApiDevice => typeof item === 'object' && item !== null);
}

function post(source: DeviceScopeSource, body: unknown, nowMs: number): Promise<Record<string, unknown>> {
  if (source.edgeHubKey === '') {
    // A provisioned gateway before its $edgeHub module is set up (firmware/uplink/provisioning/edge-hub.ts).
    return Promise.reject(new ScopeApiError('no $edgeHub credentials yet (set up once the gateway is provisioned)'));
  }
  const [host, port] = splitHost(source.hostName);
  const resource = `${source.hostName}/devices/${source.gatewayId}/modules/$edgeHub`;
  const token = makeSasToken(resource, source.edgeHubKey, Math.floor(nowMs / 1000) + SCOPE_TOKEN_LIFETIME_SECS);
  const path =
    `/devices/${encodeURIComponent(source.gatewayId)}/modules/${encodeURIComponent('$edgeHub')}` +
    `/devicesAndModulesInTargetDeviceScope?api-version=${SCOPE_API_VERSION}`;
  const payload = Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port,
        path,
        method: 'POST',
        servername: host,
        ca: source.ca,
        timeout: SCOPE_REQUEST_TIMEOUT_MS,
        headers: { authorization: token, 'content-type': 'application/json', 'content-length': payload.length },
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > SCOPE_PAGE_BYTES_MAX) req.destroy(new ScopeApiError(`a page over ${SCOPE_PAGE_BYTES_MAX} bytes`));
          else chunks.push(chunk);
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          if (status !== 200) {
            return reject(new ScopeApiError(`device-scope API answered ${status}: ${text.slice(0, 200)}`, status));
          }
          try {
            const parsed = JSON.parse(text) as unknown;
            if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
              throw new Error('not an object');
            resolve(parsed as Record<string, unknown>);
          } catch (err) {
            reject(new ScopeApiError(`device-scope API answer is not a JSON object: ${(err as Error).message}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new ScopeApiError(`no answer within ${SCOPE_REQUEST_TIMEOUT_MS} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function splitHost(hostName: string): [string, number] {
  const colon = hostName.lastIndexOf(':');
  return colon < 0 ? [hostName, 443] : [hostName.slice(0, colon), Number(hostName.slice(colon + 1))];
}
