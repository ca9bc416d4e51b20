import type { AzureSection } from './azure-mode.js';
import type { ProvisioningConfig } from './provisioning/config.js';

/**
 * The shapes of board.json's `uplink` section once parsed (config.ts parses it; every field, its default,
 * unit and range is declared in firmware/config/schema-uplink.ts).
 */

export interface UplinkCommonConfig {
  /** The board file the section came from, as shown in errors. */
  boardFile: string;
  inflightMax: number;
  /** Bytes per second, 0 = no cap. The cloud may override it (see settings.ts). */
  bytesPerSecMax: number;
  backoff: { baseMs: number; maxMs: number };
  interfaces: string[];
  /** Absolute path, or undefined for no modem hook. */
  modemFlagPath: string | undefined;
  priorityLanes: Array<{ lane: string; weight: number }>;
  /** MQTT keepalive, seconds; undefined: the transport's default. */
  keepaliveSecs: number | undefined;
  /** Connect attempt limit, ms; undefined: the pump's and the transport's defaults. */
  connectTimeoutMs: number | undefined;
  /** A publish unacknowledged this long tears the connection down, ms. */
  publishTimeoutMs: number;
  /** Ceilings of the random delays before a reconnect on link-up and before the first connect, ms. */
  linkUpJitterMsMax: number;
  bootJitterMsMax: number;
  /** Absolute paths of PEM files. */
  caFile: string | undefined;
  certFile: string | undefined;
  keyFile: string | undefined;
}

export interface MqttUplinkConfig extends UplinkCommonConfig {
  protocol: 'mqtt';
  url: string;
  username: string | undefined;
  password: string | undefined;
  topicTemplate: string | undefined;
  configTopic: string | undefined;
  protocolVersion: 4 | 5;
}

export interface AzureUplinkConfig extends UplinkCommonConfig {
  protocol: 'azure';
  connectionString: string | undefined;
  /** Absolute path of a file holding the connection string. */
  connectionStringFile: string | undefined;
  /** DPS instead of a connection string (firmware/uplink/provisioning). */
  provisioning: ProvisioningConfig | undefined;
  /** `uplink.azure`: edge or device mode (firmware/uplink/azure-mode.ts). */
  azure: AzureSection;
  /** Edge mode's pool of children's connections (firmware/uplink/edge/limits.ts). */
  cloudConnectionsMax: number;
  cloudConnectionIdleSecs: number;
  cloudConnectsPerSecMax: number;
}

/** The sim board's embedded cloud: an in-process broker on loopback behind a link that drops on a cycle. */
export interface SimUplinkConfig extends UplinkCommonConfig {
  protocol: 'sim';
  linkUpSecs: number;
  linkDownSecs: number;
}

export type UplinkConfig = { protocol: 'none' } | MqttUplinkConfig | AzureUplinkConfig | SimUplinkConfig;
