import { createHmac } from 'node:crypto';
import https from 'node:https';

/**
 * IoT Hub's registry API for the gateway's own module identities, called with the DEVICE's credentials (as
 * IoT Edge's identity service, aziot-identityd, creates and re-keys `$edgeHub`):
 *
 *   GET https://<hub>/devices/<gw>/modules/<module>?api-version=2017-11-08-preview   -> Module JSON, or 404
 *   PUT (same URL) {deviceId, moduleId, managedBy, authentication: {type: 'sas', symmetricKey: {...}}}
 *       without If-Match: create (409 when it exists); with If-Match: "<etag>": replace (412 when it changed)
 *   Authorization: a device SAS token for `<hub>/devices/<gw>`, or the device's X.509 client certificate.
 *
 * Node's own https with the uplink's CA; no HTTP dependency. Each request is bounded in time and bytes.
 */

/** The registry API version aziot-identityd's IoT Hub client sends for module identities. */
export const MODULE_API_VERSION = '2017-11-08-preview';
/** Lifetime of the device token one request signs, seconds: a request takes seconds, a leaked token is useless soon. */
const REGISTRY_TOKEN_TTL_SECS = 120;
/** One request's limit, ms: connect, TLS and answer on a slow cellular link. */
export const REGISTRY_REQUEST_TIMEOUT_MS = 20_000;
/** A Module's JSON is under a kilobyte; an answer this large is not one. */
const REGISTRY_ANSWER_BYTES_MAX = 64 * 1024;

/** How the gateway reaches its hub's registry as itself. */
export interface RegistryAccess {
  /** `host` or `host:port`. */
  hostName: string;
  deviceId: string;
  /** base64 device key (symmetric enrollments), or the certificate and key (X.509). */
  deviceKey?: string;
  cert?: string;
  key?: string;
  ca?: string;
}

/** What the gateway needs of a Module answer. */
export interface ModuleRecord {
  etag: string;
  primaryKey: string | null;
  secondaryKey: string | null;
}

export class RegistryError extends Error {
  constructor(
    message: string,
    /** HTTP status; 0 when IoT Hub was not reached or the answer was not one. */
    readonly status: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'RegistryError';
  }
}

/** The module, or null when IoT Hub has none of that id (404). */
export async function getModule(access: RegistryAccess, moduleId: string): Promise<ModuleRecord | null> {
  const answer = await request(access, moduleId, 'GET', undefined, undefined);
  return answer.status === 404 ? null : moduleRecord(answer, moduleId);
}

/** Creates the module (etag undefined) or replaces its keys when IoT Hub still has `etag`. */
export async function putModule(
  access: RegistryAccess,
  moduleId: string,
  keys: { primaryKey: string; secondaryKey: string },
  etag: string | undefined,
): Promise<ModuleRecord> {
  const body = {
    deviceId: access.deviceId,
    moduleId,
    managedBy: 'iotEdge',
    authentication: { type: 'sas', symmetricKey: keys },
  };
  const answer = await request(access, moduleId, 'PUT', body, etag);
  if (answer.status === 404) throw new RegistryError(`PUT ${moduleId}: 404 (the module is gone)`, 404);
  return moduleRecord(answer, moduleId);
}

interface Answer {
  status: number;
  text: string;
}

function moduleRecord(answer: Answer, moduleId: string): ModuleRecord {
  const what = `module "${moduleId}"`;
  if (answer.status !== 200 && answer.status !== 201) {
    throw new RegistryError(`IoT Hub's registry answered ${answer.status} for ${what}: ${answer.text}`, answer.status);
  }
  let doc: { etag?: unknown; authentication?: { symmetricKey?: Record<string, unknown> } };
  try {
    doc = JSON.parse(answer.text) as typeof doc;
  } catch (err) {
    throw new RegistryError(`IoT Hub's answer for ${what} is not JSON`, 0, { cause: err });
  }
  if (typeof doc?.etag !== 'string') throw new RegistryError(`IoT Hub's answer for ${what} has no etag`, 0);
  const key = (name: string) => {
    const value = doc.authentication?.symmetricKey?.[name];
    return typeof value === 'string' ? value : null;
  };
  return { etag: doc.etag, primaryKey: key('primaryKey'), secondaryKey: key('secondaryKey') };
}

function request(
  access: RegistryAccess,
  moduleId: string,
  method: 'GET' | 'PUT',
  body: unknown,
  etag: string | undefined,
): Promise<Answer> {
  const [host, port] = splitHost(access.hostName);
  const path =
    `/devices/${encodeURIComponent(access.deviceId)}/modules/${encodeURIComponent(moduleId)}` +
    `?api-version=${MODULE_API_VERSION}`;
  const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  const headers: Record<string, string | number> = { accept: 'application/json' };
  if (access.deviceKey !== undefined) {
    const expiry = Math.floor(Date.now() / 1000) + REGISTRY_TOKEN_TTL_SECS;
    headers.authorization = deviceToken(`${access.hostName}/devices/${access.deviceId}`, access.deviceKey, expiry);
  }
  if (payload !== undefined)
    Object.assign(headers, { 'content-type': 'application/json', 'content-length': payload.length });
  if (etag !== undefined) headers['if-match'] = `"${etag}"`;
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host,
        port,
        path,
        method,
        servername: host,
        ca: access.ca,
        cert: access.cert,
        key: access.key,
        headers,
        timeout: REGISTRY_REQUEST_TIMEOUT_MS,
      },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (chunk: Buffer) => {
          bytes += chunk.length;
          if (bytes > REGISTRY_ANSWER_BYTES_MAX)
            req.destroy(new RegistryError(`an answer over ${REGISTRY_ANSWER_BYTES_MAX} bytes`, 0));
          else chunks.push(chunk);
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8').slice(0, 2000) }),
        );
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new RegistryError(`no answer within ${REGISTRY_REQUEST_TIMEOUT_MS} ms`, 0)));
    req.on('error', (err) =>
      reject(
        err instanceof RegistryError
          ? err
          : new RegistryError(`IoT Hub's registry not reached: ${err.message}`, 0, { cause: err }),
      ),
    );
    req.end(payload);
  });
}

/** A SAS token: HMAC-SHA256 of "<url-encoded resource>\n<expiry>" under the device key (IoT Hub's scheme). */
function deviceToken(resource: string, keyBase64: string, expirySecs: number): string {
  const encoded = encodeURIComponent(resource);
  const signature = createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(`${encoded}\n${expirySecs}`);
  return `SharedAccessSignature sr=${encoded}&sig=${encodeURIComponent(signature.digest('base64'))}&se=${expirySecs}`;
}

function splitHost(hostName: string): [string, number] {
  const colon = hostName.lastIndexOf(':');
  return colon < 0 ? [hostName, 443] : [hostName.slice(0, colon), Number(hostName.slice(colon + 1))];
}
