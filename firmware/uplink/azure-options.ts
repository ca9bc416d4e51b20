import type { DeviceClient } from './azure-sdk.js';
import { UplinkError } from './types.js';

/** Options of the `azure` transport (board.json `uplink` with `"protocol": "azure"`). */
export interface AzureTransportOptions {
  /**
   * `HostName=<hub>;DeviceId=<id>;SharedAccessKey=<key>` (SAS), or `HostName=<hub>;DeviceId=<id>;x509=true`
   * with `cert` and `key`. `HostName` may carry a port (`localhost:8884`): the SDK connects to
   * `mqtts://<HostName>`, and mqtt.js takes the port from that URL.
   */
  connectionString: string;
  /** PEM CA certificate(s) for the hub's TLS certificate. Default: the system's roots. */
  ca?: string;
  /** PEM device certificate and key, for X.509 authentication. */
  cert?: string;
  key?: string;
  /** MQTT keepalive, seconds. Default 60 (the SDK's own 180 leaves a dead link unnoticed for 4.5 minutes). */
  keepaliveSecs?: number;
  /**
   * Makes the SDK client of each `connect()` instead of the connection string (edge mode: a child's connection
   * authenticated on its behalf, firmware/uplink/edge/link.ts); `connectionString` then only names the identity.
   */
  createClient?: () => DeviceClient;
  /** Runs on each new connection once it is open, before `connect()` resolves (edge mode's downlink hooks). */
  onOpen?: (client: DeviceClient) => Promise<void>;
}

export type ValidAzureOptions = Required<Pick<AzureTransportOptions, 'keepaliveSecs'>> & AzureTransportOptions;

/**
 * MQTT keepalive when the board sets none, seconds. The SDK's own 180 s leaves a dead link unnoticed for
 * 4.5 minutes (1.5 keepalives); 60 s notices within 90 s for one 2-byte PINGREQ a minute, well under IoT Hub's
 * 1,740 s maximum.
 */
const KEEPALIVE_SECS_DEFAULT = 60;
/** IoT Hub's maximum MQTT keepalive (29 minutes), seconds: it refuses a CONNECT that asks for more. */
const KEEPALIVE_SECS_MAX = 1_740;

export function validateAzureOptions(options: AzureTransportOptions): ValidAzureOptions {
  const bad = (message: string) => new UplinkError('INVALID', message);
  const cs = options.connectionString ?? '';
  if (!/(^|;)HostName=[^;]+/.test(cs) || !/(^|;)DeviceId=[^;]+/.test(cs)) {
    throw bad('"connectionString" must contain HostName=... and DeviceId=...');
  }
  const x509 = /(^|;)x509=true/i.test(cs);
  if (
    options.createClient === undefined &&
    !x509 &&
    !/(^|;)SharedAccessKey=[^;]+/.test(cs) &&
    !/(^|;)SharedAccessSignature=/.test(cs)
  ) {
    throw bad('"connectionString" needs SharedAccessKey=..., SharedAccessSignature=... or x509=true');
  }
  if (x509 && (options.cert === undefined || options.key === undefined))
    throw bad('"cert" and "key" are required with x509=true');
  const keepaliveSecs = options.keepaliveSecs ?? KEEPALIVE_SECS_DEFAULT;
  if (!Number.isInteger(keepaliveSecs) || keepaliveSecs < 1 || keepaliveSecs > KEEPALIVE_SECS_MAX) {
    throw bad(`"keepaliveSecs" must be an integer from 1 to 1740 seconds (IoT Hub's maximum), got ${keepaliveSecs}`);
  }
  return { ...options, keepaliveSecs };
}
