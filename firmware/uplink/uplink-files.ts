import { readFile } from 'node:fs/promises';
import { collect, ConfigError, throwCollected } from '../config/errors.js';
import { parseEdgeHubConnectionString, type EdgeHubIdentity } from './azure-mode.js';
import type { AzureUplinkConfig, MqttUplinkConfig, UplinkCommonConfig } from './config-types.js';
import type { TransportConfig } from './transports.js';

/**
 * Reading the uplink's files (CA, certificate, key, connection strings), every failure naming the board file
 * and the field; parsing the section itself is config.ts's.
 */

/** PEM files hold a certificate chain or a CA bundle (Debian's whole bundle is about 220 KiB). */
export const PEM_FILE_BYTES_MAX = 1024 * 1024;
/** A connection string is a few hundred bytes; a file far larger is not one (a wrong path), and is refused. */
const CONNECTION_STRING_FILE_BYTES_MAX = 4 * 1024;
/** mqtt.js's connect timer runs this much past the pump's, so the pump's fires first, ms. */
const MQTT_CONNECT_TIMEOUT_MARGIN_MS = 1_000;

/** Reads a file named by field `key`; every failure names the board file, the field and the file. */
export async function readNamedFile(
  config: UplinkCommonConfig,
  key: string,
  path: string,
  bytesMax: number,
  expected: string,
): Promise<string> {
  const where = { file: config.boardFile, jsonPath: `$.uplink.${key}` };
  let text: string;
  try {
    const bytes = await readFile(path);
    if (bytes.length > bytesMax) {
      throw new ConfigError(
        'UNREADABLE',
        where,
        `${expected} of at most ${bytesMax} bytes`,
        `${path}: ${bytes.length} bytes`,
      );
    }
    text = bytes.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const found = `${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
    throw new ConfigError('UNREADABLE', where, `a readable file (${expected})`, found, { cause: err });
  }
  if (expected === 'PEM' && !text.includes('-----BEGIN ')) {
    throw new ConfigError('INVALID', where, 'a PEM file (-----BEGIN ...)', `${path}: no PEM block`);
  }
  return text;
}

/** Reads the CA, certificate, key and connection string files and builds the transport's options. */
export async function loadUplinkFiles(
  config: MqttUplinkConfig | AzureUplinkConfig,
  gatewayId: string,
): Promise<TransportConfig> {
  return (await readUplinkFiles(config, gatewayId)).transport;
}

/**
 * Every file of an mqtt or (connection string) azure uplink, each read once: the transport's options and, in
 * edge mode, the `$edgeHub` identity. One read per file, so a file replaced meanwhile cannot give a mixed set.
 */
export async function readUplinkFiles(
  config: MqttUplinkConfig | AzureUplinkConfig,
  gatewayId: string,
): Promise<{ transport: TransportConfig; edgeHub: EdgeHubIdentity | undefined }> {
  const pem = (key: 'caFile' | 'certFile' | 'keyFile') => {
    const path = config[key];
    if (path === undefined) return Promise.resolve(undefined);
    return readNamedFile(config, key, path, PEM_FILE_BYTES_MAX, 'PEM');
  };
  // Settled together and reported in field order: every unreadable file at once, the same report each run.
  const settled = await Promise.allSettled([pem('caFile'), pem('certFile'), pem('keyFile')]);
  const errors: ConfigError[] = [];
  const [ca, cert, key] = settled.map((result) => {
    if (result.status === 'fulfilled') return result.value;
    return collect(errors, () => {
      throw result.reason;
    });
  });
  throwCollected(errors);
  const { keepaliveSecs, connectTimeoutMs } = config;
  if (config.protocol === 'mqtt') {
    const { url, username, password, topicTemplate, configTopic, protocolVersion } = config;
    const transport: TransportConfig = {
      protocol: 'mqtt',
      url,
      gatewayId,
      username,
      password,
      topicTemplate,
      configTopic,
      protocolVersion,
      ca,
      cert,
      key,
      keepaliveSecs,
      // The pump's guard is the timeout that counts (its error names the limit); mqtt.js's own comes later.
      connectTimeoutMs: connectTimeoutMs === undefined ? undefined : connectTimeoutMs + MQTT_CONNECT_TIMEOUT_MARGIN_MS,
    };
    return { transport, edgeHub: undefined };
  }
  if (config.provisioning !== undefined) throw new Error('a provisioned uplink has no connection string to load');
  const path = config.connectionStringFile;
  const connectionString =
    path === undefined
      ? config.connectionString!
      : (
          await readNamedFile(
            config,
            'connectionStringFile',
            path,
            CONNECTION_STRING_FILE_BYTES_MAX,
            'a connection string',
          )
        ).trim();
  checkDeviceId(config, connectionString, gatewayId);
  // Read here too so that `outpost board check` and start-up refuse a wrong $edgeHub file alike.
  const edgeHub = await loadEdgeHub(config, gatewayId);
  return { transport: { protocol: 'azure', connectionString, ca, cert, key, keepaliveSecs }, edgeHub };
}

/** Edge mode: the `$edgeHub` module identity from its connection string file; undefined in device mode. */
export async function loadEdgeHub(config: AzureUplinkConfig, gatewayId: string): Promise<EdgeHubIdentity | undefined> {
  const path = config.azure.edgeHubConnectionStringFile;
  if (path === undefined) return undefined;
  const key = 'azure.edgeHubConnectionStringFile';
  const text = await readNamedFile(config, key, path, CONNECTION_STRING_FILE_BYTES_MAX, 'a connection string');
  return parseEdgeHubConnectionString(text, gatewayId, config.boardFile, path);
}

/** IoT Hub knows the gateway by the connection string's DeviceId; message ids must use the same name. */
export function checkDeviceId(
  config: Pick<AzureUplinkConfig, 'boardFile' | 'connectionStringFile'>,
  connectionString: string,
  gatewayId: string,
): void {
  const deviceId = /(?:^|;)DeviceId=([^;]+)/.exec(connectionString)?.[1];
  if (deviceId !== undefined && deviceId !== gatewayId) {
    const field = config.connectionStringFile === undefined ? 'connectionString' : 'connectionStringFile';
    const where = { file: config.boardFile, jsonPath: `$.uplink.${field}` };
    throw new ConfigError('INVALID', where, `DeviceId=${gatewayId} (identity.gatewayId)`, `DeviceId=${deviceId}`);
  }
}
