import type { IClientOptions } from 'mqtt';

/**
 * Over an mqtt uplink the cloud has no twin or device-scope service, so the gateway keeps its side channels
 * on the uplink's own broker, each on a short-lived or following connection of its own with the uplink's
 * login: the identity scope (auth/scope-sync.ts), the children's twins (twin/mqtt-sync.ts), update manifests
 * (ota/source.ts) and an update's chunks (ota/download-mqtt.ts). Every topic the gateway uses there sits under
 * one namespace per gateway, `outpost/{gatewayId}/…`, and every one of them is named here, so a cloud-side
 * integration reads one file (an update's chunk topic is the manifest's own choice).
 */

/** Where the mqtt uplink's broker is, with the uplink's credentials. */
export interface SideChannelBroker {
  url: string;
  ca?: string | Buffer;
  cert?: string | Buffer;
  key?: string | Buffer;
  username?: string;
  password?: string;
}

export interface SideChannelTiming {
  /** mqtt.js's reconnectPeriod: 0 for a one-shot read or write, else how soon a follower reconnects, ms. */
  reconnectPeriodMs: number;
  /** Bound on the CONNECT round trip, ms. */
  connectTimeoutMs: number;
}

/**
 * The connect options every side channel shares: the uplink's login, a clean session (the channel
 * resubscribes itself, and a retained document is sent again on every subscribe) and no write cache
 * (nothing is queued while the connection is down: the channel's owner retries at the next uplink connect).
 */
export function sideChannelOptions(broker: SideChannelBroker, timing: SideChannelTiming): IClientOptions {
  return {
    ca: broker.ca,
    cert: broker.cert,
    key: broker.key,
    username: broker.username,
    password: broker.password,
    clean: true,
    reconnectPeriod: timing.reconnectPeriodMs,
    connectTimeout: timing.connectTimeoutMs,
    writeCache: false,
  };
}

/** The namespace with placeholders, as the uplink's topic templates write it. */
const NAMESPACE_TEMPLATE = 'outpost/{gatewayId}';

/** Default upstream telemetry topic of the mqtt uplink; placeholders: gatewayId, deviceId, lane, seq, messageId. */
export const TELEMETRY_TOPIC_TEMPLATE_DEFAULT = `${NAMESPACE_TEMPLATE}/{deviceId}/telemetry`;
/** Default retained cloud settings document of the mqtt uplink; placeholder: gatewayId. */
export const CONFIG_TOPIC_TEMPLATE_DEFAULT = `${NAMESPACE_TEMPLATE}/config`;

const namespace = (gatewayId: string): string => `outpost/${gatewayId}`;

/** Retained identity scope document: which children may connect (cloud → gateway). */
export function scopeTopic(gatewayId: string): string {
  return `${namespace(gatewayId)}/scope`;
}

/** Retained update manifest (cloud → gateway). */
export function updateTopic(gatewayId: string): string {
  return `${namespace(gatewayId)}/update`;
}

/** Retained state of the update in progress (gateway → cloud). */
export function updateStatusTopic(gatewayId: string): string {
  return `${updateTopic(gatewayId)}/status`;
}

/** Prefix of every twin topic; `{deviceId}` after it is a connection id, so a module adds one more level. */
export function twinTopicPrefix(gatewayId: string): string {
  return `${namespace(gatewayId)}/twin/`;
}

/** A child's reported patch (gateway → cloud) or retained desired section (cloud → gateway). */
export function twinTopic(gatewayId: string, deviceId: string, section: 'reported' | 'desired'): string {
  return `${twinTopicPrefix(gatewayId)}${deviceId}/${section}`;
}

/** Subscriptions for every desired section: devices' and modules' (one more level). */
export function twinDesiredFilters(gatewayId: string): string[] {
  const prefix = twinTopicPrefix(gatewayId);
  return [`${prefix}+/desired`, `${prefix}+/+/desired`];
}

/** The sim cloud's: aedes 1.x speaks MQTT 3.1.1 only, so the sequence travels in the topic. */
export const SIM_TELEMETRY_TOPIC_TEMPLATE = `${TELEMETRY_TOPIC_TEMPLATE_DEFAULT}/{seq}`;

/** Every topic of SIM_TELEMETRY_TOPIC_TEMPLATE (the sim cloud's consumer). */
export function telemetryFilter(gatewayId: string): string {
  return `${namespace(gatewayId)}/+/telemetry/+`;
}
