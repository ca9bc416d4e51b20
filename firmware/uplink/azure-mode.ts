import { resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import type { ConfigNode } from '../config/node.js';
import { fieldsOf } from '../config/schema.js';

/**
 * board.json `uplink.azure`: how the gateway stands in IoT Hub.
 * - `"edge"`: the gateway is an IoT Edge device identity. outpost then acts as its `$edgeHub` module, whose
 *   connection string (`HostName=...;DeviceId=<gw>;ModuleId=$edgeHub;SharedAccessKey=...`, from
 *   `az iot hub module-identity connection-string show --device-id <gw> --module-id '$edgeHub'`) is in
 *   `edgeHubConnectionStringFile`: children are listed by IoT Hub's device-scope API and go up as themselves.
 * - `"device"`: a plain device identity; one connection, children named in `outpost-device-id`, the child list
 *   from the gateway twin's `outpostScope`.
 * Default: "edge" when edgeHubConnectionStringFile is given, else "device".
 * With DPS (`uplink.provisioning`) "edge" takes no file: the gateway sets its `$edgeHub` module up itself, on
 * whichever hub it is assigned (provisioning/edge-hub.ts).
 */

export type AzureMode = 'edge' | 'device';

export interface AzureSection {
  mode: AzureMode;
  /** Absolute path of the `$edgeHub` module's connection string; present exactly in edge mode. */
  edgeHubConnectionStringFile: string | undefined;
}

/** The `$edgeHub` module identity outpost acts as in edge mode. */
export interface EdgeHubIdentity {
  /** IoT Hub's host, with a port if the connection string has one. */
  hostName: string;
  /** The gateway's device id (= identity.gatewayId). */
  deviceId: string;
  moduleId: typeof EDGE_HUB_MODULE_ID;
  /** Base64 key of the module: it signs the device-scope API's token and children's on-behalf-of tokens. */
  sharedAccessKey: string;
}

export const EDGE_HUB_MODULE_ID = '$edgeHub';
const FIELD = 'uplink.azure.edgeHubConnectionStringFile';

export function parseAzureSection(node: ConfigNode, baseDir: string, provisioned = false): AzureSection {
  if (node.missing) return { mode: 'device', edgeHubConnectionStringFile: undefined };
  node.optionalRecord();
  node.keys(fieldsOf('uplink.azure'));
  const path = node.field('edgeHubConnectionStringFile').optionalString();
  const edgeHubConnectionStringFile = path === undefined ? undefined : resolve(baseDir, path);
  const mode = node
    .field('mode')
    .oneOf(['edge', 'device'] as const, { default: edgeHubConnectionStringFile === undefined ? 'device' : 'edge' });
  if (provisioned && edgeHubConnectionStringFile !== undefined) {
    node
      .field('edgeHubConnectionStringFile')
      .fail('no file with provisioning (the gateway sets its $edgeHub up itself)');
  }
  if (mode === 'edge' && edgeHubConnectionStringFile === undefined && !provisioned) {
    node.field('edgeHubConnectionStringFile').fail('the $edgeHub module\'s connection string file (mode "edge")');
  }
  if (mode === 'device' && edgeHubConnectionStringFile !== undefined) {
    node.field('mode').fail('"edge" with edgeHubConnectionStringFile (or leave the file out)');
  }
  return { mode, edgeHubConnectionStringFile };
}

/**
 * Parses the `$edgeHub` connection string read from `file`; it must name this gateway and the `$edgeHub`
 * module, and carry a key. Errors name the board file, the field and the connection string's field.
 */
export function parseEdgeHubConnectionString(
  text: string,
  gatewayId: string,
  boardFile: string,
  file: string,
): EdgeHubIdentity {
  const where = { file: boardFile, jsonPath: `$.${FIELD}` };
  const fields = new Map<string, string>();
  for (const part of text.trim().split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0) fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const got = (name: string) => `${file}: ${fields.has(name) ? `${name}=${fields.get(name)}` : `no ${name}`}`;
  const hostName = fields.get('HostName');
  if (hostName === undefined || !/^[A-Za-z0-9.-]{1,253}(:\d{1,5})?$/.test(hostName)) {
    throw new ConfigError('INVALID', where, 'HostName=<hub host>', got('HostName'));
  }
  if (fields.get('DeviceId') !== gatewayId) {
    throw new ConfigError('INVALID', where, `DeviceId=${gatewayId} (identity.gatewayId)`, got('DeviceId'));
  }
  if (fields.get('ModuleId') !== EDGE_HUB_MODULE_ID) {
    throw new ConfigError('INVALID', where, `ModuleId=${EDGE_HUB_MODULE_ID}`, got('ModuleId'));
  }
  const key = fields.get('SharedAccessKey');
  if (key === undefined || !/^[A-Za-z0-9+/]{20,88}={0,2}$/.test(key)) {
    // The key itself is never echoed into an error.
    throw new ConfigError(
      'INVALID',
      where,
      'SharedAccessKey=<base64 key of 16 to 64 bytes>',
      `${file}: ${key === undefined ? 'no SharedAccessKey' : 'a SharedAccessKey that is not one'}`,
    );
  }
  return { hostName, deviceId: gatewayId, moduleId: EDGE_HUB_MODULE_ID, sharedAccessKey: key };
}
