import mqtt, { type IClientOptions, type IClientPublishOptions, type IPublishPacket, type MqttClient } from 'mqtt';
import { useCompactMqttEncoder } from '../mqtt-encoder.js';
import { CONFIG_TOPIC_TEMPLATE_DEFAULT, TELEMETRY_TOPIC_TEMPLATE_DEFAULT } from '../side-channel.js';
import { UPSTREAM_KEY, compileTopicTemplate, topicLevelSafe } from './message.js';
import { TOO_LARGE, publishFits, pubackRefusal } from './refusal.js';
import { ServerDisconnectError } from './throttle.js';
import {
  UplinkError,
  type ConfigTopicChannel,
  type ServerLimits,
  type UplinkMessage,
  type UplinkTransport,
} from './types.js';

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

const KEEPALIVE_SECS_DEFAULT = 30;
const CONNECT_TIMEOUT_MS_DEFAULT = 10_000;
const SESSION_EXPIRY_SECS_DEFAULT = 7 * 86_400;
/** `close()` waits this long for the DISCONNECT to go out before it destroys the socket. */
const CLOSE_GRACE_MS = 2_000;

type Resolved = Required<Omit<MqttTransportOptions, 'username' | 'password' | 'ca' | 'cert' | 'key'>> &
  Pick<MqttTransportOptions, 'username' | 'password' | 'ca' | 'cert' | 'key'>;

function validate(options: MqttTransportOptions): Resolved {
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
    throw bad(
      `"configTopic" must be a topic without + or # whose only placeholder is {gatewayId}, got ${JSON.stringify(o.configTopic)}`,
    );
  }
  range('keepaliveSecs', o.keepaliveSecs, 1, 65_535, 'seconds');
  range('connectTimeoutMs', o.connectTimeoutMs, 100, 300_000, 'ms');
  range('sessionExpirySecs', o.sessionExpirySecs, 1, 0xffff_ffff, 'seconds');
  return o;
}

function clientOptions(o: Resolved): IClientOptions {
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

function publishOptions(o: Resolved, message: UplinkMessage): IClientPublishOptions {
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

/** The `mqtt` transport: mqtt.js v5 to any MQTT 3.1.1/5 broker, QoS 1, one connection per `connect()`. */
export function createMqttTransport(options: MqttTransportOptions): UplinkTransport {
  const o = validate(options);
  useCompactMqttEncoder();
  const topicFor = compileTopicTemplate(o.topicTemplate, o.gatewayId);
  const listeners = new Set<(cause: Error) => void>();
  const configTopic = o.configTopic.replace('{gatewayId}', topicLevelSafe(o.gatewayId));
  const configListeners = new Set<(payload: Buffer) => void>();
  // mqtt.js never settles QoS 1 callbacks of a `clean: false` client that closes without reconnecting (its
  // outgoing store waits for a reconnect that will not come), so each publish's rejecter is kept here.
  const pending = new Set<(err: Error) => void>();
  let client: MqttClient | null = null;
  let connected = false;
  let limits: ServerLimits = { receiveMaximum: null, packetBytesMax: null };
  let abortConnect: ((err: Error) => void) | null = null;

  function lose(c: MqttClient, cause: Error): void {
    if (client !== c) return;
    const wasConnected = connected;
    client = null;
    connected = false;
    // Our listeners stay (each checks `client === c`): removeAllListeners() would also strip mqtt.js's own
    // 'close' handler, which clears its CONNACK timer, and a connect torn down early would then hold the
    // process open for connectTimeoutMs.
    c.end(true);
    abortConnect?.(cause);
    abortConnect = null;
    for (const reject of pending) reject(cause);
    pending.clear();
    if (wasConnected) for (const listener of listeners) listener(cause);
  }

  function connect(): Promise<void> {
    if (client !== null) lose(client, new UplinkError('CLOSED', 'replaced by a new connect()'));
    const c = mqtt.connect(o.url, clientOptions(o));
    client = c;
    return new Promise((resolve, reject) => {
      abortConnect = reject;
      let lastError: Error | null = null;
      c.on('error', (err) => {
        lastError = err;
        // mqtt.js reports an incoming packet it cannot parse (mosquitto 2.0 answers a message over its
        // message_size_limit with a PUBACK reason MQTT 5 does not allow) and then keeps the socket open
        // with its parser stuck: nothing, not even a PINGRESP, is read again. Such a connection is lost.
        if (!connected) return;
        lose(c, new UplinkError('DISCONNECTED', `connection to ${o.url} unusable: ${err.message}`, { cause: err }));
      });
      // MQTT 5 (3.14): a server says why it ends the session; the close that follows reports this as the cause,
      // so a server shedding load (throttle.ts) is told from a link that failed.
      c.on('disconnect', (packet) => {
        if (client !== c) return;
        lastError = new ServerDisconnectError(packet.reasonCode ?? 0, packet.properties?.reasonString);
      });
      c.on('message', (topic, payload) => {
        if (client === c && topic === configTopic) for (const listener of configListeners) listener(payload);
      });
      c.once('connect', (connack) => {
        if (client !== c) return;
        connected = true;
        const properties = connack.properties;
        limits = {
          receiveMaximum: properties?.receiveMaximum ?? null,
          packetBytesMax: properties?.maximumPacketSize ?? null,
        };
        abortConnect = null;
        resolve();
      });
      c.on('close', () => {
        const why = lastError?.message ?? 'connection closed';
        const code = connected ? 'DISCONNECTED' : 'CONNECT';
        const what = connected ? `connection to ${o.url} lost` : `cannot connect to ${o.url}`;
        lose(c, new UplinkError(code, `${what}: ${why}`, { cause: lastError }));
      });
    });
  }

  function publish(message: UplinkMessage): Promise<void> {
    const c = client;
    if (c === null || !connected) return Promise.reject(new UplinkError('DISCONNECTED', `not connected to ${o.url}`));
    const topic = topicFor(message);
    const options = publishOptions(o, message);
    const { packetBytesMax } = limits;
    // A broker closes the connection on a packet over its Maximum Packet Size (mosquitto: DISCONNECT 0x95),
    // which would take the whole window down with it, again at every reconnect: never send one.
    const packet: IPublishPacket = { cmd: 'publish', topic, payload: message.body, qos: 1, dup: false, retain: false };
    packet.messageId = 1;
    packet.properties = options.properties;
    if (packetBytesMax !== null && !publishFits(packet, o.protocolVersion, packetBytesMax)) {
      const what = `publish of ${message.messageId} is over the broker's Maximum Packet Size (${packetBytesMax} bytes)`;
      return Promise.reject(new UplinkError('REFUSED', what, { refusal: TOO_LARGE }));
    }
    return new Promise((resolve, reject) => {
      pending.add(reject);
      c.publish(topic, message.body, options, (err, ack) => {
        pending.delete(reject);
        if (!err) resolve();
        else if (ack?.cmd === 'puback' && typeof ack.reasonCode === 'number') {
          const refusal = pubackRefusal(ack.reasonCode);
          const what = `the broker refused ${message.messageId}: ${err.message}`;
          reject(new UplinkError('REFUSED', what, { cause: err, refusal }));
        } else {
          reject(new UplinkError('REJECTED', `publish of ${message.messageId} failed: ${err.message}`, { cause: err }));
        }
      });
    });
  }

  /** PINGREQ on the live connection; any PINGRESP after it is the answer (keepalive pings are as good). */
  function probe(timeoutMs: number): Promise<boolean> {
    const c = client;
    if (c === null || !connected) return Promise.resolve(false);
    return new Promise((resolve) => {
      const finish = (answered: boolean) => {
        clearTimeout(timer);
        c.off('packetreceive', onPacket);
        c.off('close', onClose);
        resolve(answered);
      };
      const onPacket = (packet: { cmd: string }) => packet.cmd === 'pingresp' && finish(true);
      const onClose = () => finish(false);
      const timer = setTimeout(() => finish(false), timeoutMs);
      c.on('packetreceive', onPacket);
      c.on('close', onClose);
      c.sendPing();
    });
  }

  const configChannel: ConfigTopicChannel = {
    topic: configTopic,
    async subscribe() {
      const c = client;
      if (c === null || !connected) throw new UplinkError('DISCONNECTED', `not connected to ${o.url}`);
      const granted = await c.subscribeAsync(configTopic, { qos: 1 }).catch((err: Error) => {
        throw new UplinkError('REJECTED', `subscribe to ${configTopic} failed: ${err.message}`, { cause: err });
      });
      // SUBACK code 0x80 (MQTT 3.1.1) or >= 0x80 (MQTT 5): the broker refused, e.g. by its ACL.
      if (granted.some((g) => g.qos >= 0x80))
        throw new UplinkError('REJECTED', `the broker refused a subscription to ${configTopic}`);
    },
    onMessage(listener) {
      configListeners.add(listener);
      return () => configListeners.delete(listener);
    },
  };

  async function close(): Promise<void> {
    const c = client;
    if (c === null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_GRACE_MS);
      c.end(false, {}, () => (clearTimeout(timer), resolve()));
    });
    lose(c, new UplinkError('CLOSED', 'closed'));
  }

  return {
    protocol: 'mqtt',
    connect,
    publish,
    probe,
    serverLimits: () => limits,
    onDisconnect(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async destroy() {
      if (client !== null) lose(client, new UplinkError('CLOSED', 'destroyed'));
    },
    close,
    configTopic: configChannel,
  };
}
