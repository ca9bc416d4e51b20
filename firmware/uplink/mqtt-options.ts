import type { IClientOptions, IClientPublishOptions } from 'mqtt';
import { CONFIG_TOPIC_TEMPLATE_DEFAULT, TELEMETRY_TOPIC_TEMPLATE_DEFAULT } from '../side-channel.js';
import { UPSTREAM_KEY } from './message.js';
import { UplinkError, type UplinkMessage } from './types.js';

/** Options of the `mqtt` transport (board.json `uplink` with `"protocol": "mqtt"`). */
export interface MqttTransportOptions {
  /** Broker address, `mqtt://host:port` (TCP) or `mqtts://host:port` (TLS). */
  url: string;
  /** This gateway's id: the `{gatewayId}` of topics and stable message ids. */
  gatewayId: string;
  /** MQTT client id; fixed so the broker keeps the session across reconnects. Default `outpost-<gatewayId>`. */
  clientId?: string;
  username?: string;
  password?: string;
  /** PEM CA certificate(s) that sign the broker's certificate (mqtts). Default: the system's roots. */
  ca?: string | Buffer;
  /** PEM client certificate and key for brokers that authenticate by certificate (AWS IoT Core). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Default `outpost/{gatewayId}/{deviceId}/telemetry`; placeholders: gatewayId, deviceId, lane, seq, messageId. */
  topicTemplate?: string;
  /** Retained settings document for this gateway; placeholder: gatewayId. Default `outpost/{gatewayId}/config`. */
  configTopic?: string;
  /** 5 (MQTT 5: ids and times travel as user properties) or 4 (MQTT 3.1.1: no properties). Default 5. */
  protocolVersion?: 4 | 5;
  /** Keepalive, seconds; a silent link is noticed after 1.5× this. Default 30. */
  keepaliveSecs?: number;
  /** How long one connect attempt (TCP, TLS, CONNACK) may take, ms. Default 10,000. */
  connectTimeoutMs?: number;
  /** MQTT 5: how long the broker keeps the session (and its queue) after a disconnect, seconds. Default 7 days. */
  sessionExpirySecs?: number;
}

/**
 * Keepalive when none is given, seconds: a link that dies without a FIN is noticed after 1.5× this (45 s),
 * for a 2-byte PINGREQ every 30 s; much shorter and a cellular link's radio never gets to sleep.
 */
const KEEPALIVE_SECS_DEFAULT = 30;
/**
 * One connect attempt's bound when none is given, ms: a TCP + TLS + CONNACK round trip over a slow cellular
 * link takes a few seconds; past 10 s the broker is not answering and backoff is the better use of the time.
 */
const CONNECT_TIMEOUT_MS_DEFAULT = 10_000;
/**
 * MQTT 5 session expiry when none is given, seconds: 7 days, so the broker keeps the session (its
 * subscriptions and queued config messages) across a week-long outage; a gateway gone longer starts afresh.
 */
const SESSION_EXPIRY_SECS_DEFAULT = 7 * 86_400;
export type Resolved = Required<Omit<MqttTransportOptions, 'username' | 'password' | 'ca' | 'cert' | 'key'>> &
  Pick<MqttTransportOptions, 'username' | 'password' | 'ca' | 'cert' | 'key'>;

export function validateMqttOptions(options: MqttTransportOptions): Resolved {
  const bad = (message: string) => new UplinkError('INVALID', message);
  if (!/^mqtts?:\/\/[^/]+/.test(options.url ?? ''))
    throw bad(`"url" must be mqtt://host:port or mqtts://host:port, got ${JSON.stringify(options.url)}`);
  if (!options.gatewayId) throw bad('"gatewayId" must be a non-empty string');
  if ((options.cert === undefined) !== (options.key === undefined))
    throw bad('"cert" and "key" must be given together');
  const o: Resolved = {
    ...options,
    clientId: options.clientId ?? `outpost-${options.gatewayId}`,
    topicTemplate: options.topicTemplate ?? TELEMETRY_TOPIC_TEMPLATE_DEFAULT,
    configTopic: options.configTopic ?? CONFIG_TOPIC_TEMPLATE_DEFAULT,
    protocolVersion: options.protocolVersion ?? 5,
    keepaliveSecs: options.keepaliveSecs ?? KEEPALIVE_SECS_DEFAULT,
    connectTimeoutMs: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS_DEFAULT,
    sessionExpirySecs: options.sessionExpirySecs ?? SESSION_EXPIRY_SECS_DEFAULT,
  };
  if (o.protocolVersion !== 4 && o.protocolVersion !== 5)
    throw bad(`"protocolVersion" must be 4 or 5, got ${o.protocolVersion}`);
  const range = (name: keyof Resolved, value: number, min: number, max: number, unit: string) => {
    if (!Number.isInteger(value) || value < min || value > max)
      throw bad(`"${name}" must be an integer from ${min} to ${max} ${unit}, got ${value}`);
  };
  if (!/^[^+#]+$/.test(o.configTopic) || /\{(?!gatewayId\})/.test(o.configTopic)) {
    const expected = '"configTopic" must be a topic without + or # whose only placeholder is {gatewayId}';
    throw bad(`${expected}, got ${JSON.stringify(o.configTopic)}`);
  }
  range('keepaliveSecs', o.keepaliveSecs, 1, 65_535, 'seconds');
  range('connectTimeoutMs', o.connectTimeoutMs, 100, 300_000, 'ms');
  range('sessionExpirySecs', o.sessionExpirySecs, 1, 0xffff_ffff, 'seconds');
  return o;
}

export function clientOptions(o: Resolved): IClientOptions {
  return {
    clientId: o.clientId,
    protocolVersion: o.protocolVersion,
    // A persistent session keeps the broker's side (subscriptions, QoS 1 state) across our reconnects.
    clean: false,
    // The pump owns reconnect and backoff; a second retry loop inside mqtt.js would fight it.
    reconnectPeriod: 0,
    connectTimeout: o.connectTimeoutMs,
    keepalive: o.keepaliveSecs,
    username: o.username,
    password: o.password,
    ca: o.ca,
    cert: o.cert,
    key: o.key,
    rejectUnauthorized: true,
    // mqtt.js's own switch for the shared encoder's number cache (see firmware/mqtt-encoder.ts).
    writeCache: false,
    ...(o.protocolVersion === 5 ? { properties: { sessionExpiryInterval: o.sessionExpirySecs } } : {}),
  };
}

export function publishOptions(o: Resolved, message: UplinkMessage): IClientPublishOptions {
  if (o.protocolVersion !== 5) return { qos: 1 };
  return {
    qos: 1,
    properties: {
      ...(message.contentType ? { contentType: message.contentType } : {}),
      userProperties: {
        ...message.properties,
        [UPSTREAM_KEY.messageId]: message.messageId,
        [UPSTREAM_KEY.enqueuedAt]: new Date(message.enqueuedAtMs).toISOString(),
        [UPSTREAM_KEY.deviceId]: message.deviceId,
        ...(message.contentEncoding ? { 'content-encoding': message.contentEncoding } : {}),
      },
    },
  };
}
