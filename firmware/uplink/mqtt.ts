import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { useCompactMqttEncoder } from '../mqtt-encoder.js';
import { compileTopicTemplate, topicLevelSafe } from './message.js';
import {
  clientOptions,
  publishOptions,
  validateMqttOptions,
  type MqttTransportOptions,
  type Resolved,
} from './mqtt-options.js';
import { TOO_LARGE, publishFits, pubackRefusal } from './refusal.js';
import { ServerDisconnectError } from './throttle.js';
import {
  UplinkError,
  type ConfigTopicChannel,
  type ServerLimits,
  type UplinkMessage,
  type UplinkTransport,
} from './types.js';

/** The `mqtt` transport: mqtt.js v5 to any MQTT 3.1.1/5 broker; its options and their defaults in mqtt-options.ts. */

export type { MqttTransportOptions } from './mqtt-options.js';

/** `close()` waits this long for the DISCONNECT to go out before it destroys the socket. */
const CLOSE_GRACE_MS = 2_000;

/** One connection per `connect()`, QoS 1. */
class MqttTransport {
  readonly topicFor: (message: UplinkMessage) => string;
  readonly configTopic: string;
  readonly configListeners = new Set<(payload: Buffer) => void>();
  private readonly listeners = new Set<(cause: Error) => void>();
  // mqtt.js never settles QoS 1 callbacks of a `clean: false` client that closes without reconnecting (its
  // outgoing store waits for a reconnect that will not come), so each publish's rejecter is kept here.
  private readonly pending = new Set<(err: Error) => void>();
  private client: MqttClient | null = null;
  private connected = false;
  limits: ServerLimits = { receiveMaximum: null, packetBytesMax: null };
  private abortConnect: ((err: Error) => void) | null = null;

  constructor(readonly o: Resolved) {
    this.topicFor = compileTopicTemplate(o.topicTemplate, o.gatewayId);
    this.configTopic = o.configTopic.replace('{gatewayId}', topicLevelSafe(o.gatewayId));
  }

  /** The client while connected, else null. */
  get live(): MqttClient | null {
    return this.connected ? this.client : null;
  }

  onDisconnect(listener: (cause: Error) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  lose(c: MqttClient, cause: Error): void {
    if (this.client !== c) return;
    const wasConnected = this.connected;
    this.client = null;
    this.connected = false;
    // Our listeners stay (each checks `client === c`): removeAllListeners() would also strip mqtt.js's own
    // 'close' handler, which clears its CONNACK timer, and a connect torn down early would then hold the
    // process open for connectTimeoutMs.
    c.end(true);
    this.abortConnect?.(cause);
    this.abortConnect = null;
    for (const reject of this.pending) reject(cause);
    this.pending.clear();
    if (wasConnected) for (const listener of this.listeners) listener(cause);
  }

  async destroy(): Promise<void> {
    if (this.client !== null) this.lose(this.client, new UplinkError('CLOSED', 'destroyed'));
  }

  connect(): Promise<void> {
    const o = this.o;
    if (this.client !== null) this.lose(this.client, new UplinkError('CLOSED', 'replaced by a new connect()'));
    const c = mqtt.connect(o.url, clientOptions(o));
    this.client = c;
    return new Promise((resolve, reject) => {
      this.abortConnect = reject;
      let lastError: Error | null = null;
      c.on('error', (err) => {
        lastError = err;
        // mqtt.js reports an incoming packet it cannot parse (mosquitto 2.0 answers a message over its
        // message_size_limit with a PUBACK reason MQTT 5 does not allow) and then keeps the socket open
        // with its parser stuck: nothing, not even a PINGRESP, is read again. Such a connection is lost.
        if (!this.connected) return;
        const what = `connection to ${o.url} unusable: ${err.message}`;
        this.lose(c, new UplinkError('DISCONNECTED', what, { cause: err }));
      });
      // MQTT 5 (3.14): a server says why it ends the session; the close that follows reports this as the cause,
      // so a server shedding load (throttle.ts) is told from a link that failed.
      c.on('disconnect', (packet) => {
        if (this.client !== c) return;
        lastError = new ServerDisconnectError(packet.reasonCode ?? 0, packet.properties?.reasonString);
      });
      c.on('message', (topic, payload) => {
        if (this.client !== c || topic !== this.configTopic) return;
        for (const listener of this.configListeners) listener(payload);
      });
      c.once('connect', (connack) => {
        if (this.client !== c) return;
        this.connected = true;
        const properties = connack.properties;
        this.limits = {
          receiveMaximum: properties?.receiveMaximum ?? null,
          packetBytesMax: properties?.maximumPacketSize ?? null,
        };
        this.abortConnect = null;
        resolve();
      });
      c.on('close', () => {
        const why = lastError?.message ?? 'connection closed';
        const code = this.connected ? 'DISCONNECTED' : 'CONNECT';
        const what = this.connected ? `connection to ${o.url} lost` : `cannot connect to ${o.url}`;
        this.lose(c, new UplinkError(code, `${what}: ${why}`, { cause: lastError }));
      });
    });
  }

  publish(message: UplinkMessage): Promise<void> {
    const c = this.live;
    if (c === null) return Promise.reject(new UplinkError('DISCONNECTED', `not connected to ${this.o.url}`));
    const topic = this.topicFor(message);
    const options = publishOptions(this.o, message);
    const { packetBytesMax } = this.limits;
    // A broker closes the connection on a packet over its Maximum Packet Size (mosquitto: DISCONNECT 0x95),
    // which would take the whole window down with it, again at every reconnect: never send one.
    const packet: IPublishPacket = { cmd: 'publish', topic, payload: message.body, qos: 1, dup: false, retain: false };
    packet.messageId = 1;
    packet.properties = options.properties;
    if (packetBytesMax !== null && !publishFits(packet, this.o.protocolVersion, packetBytesMax)) {
      const what = `publish of ${message.messageId} is over the broker's Maximum Packet Size (${packetBytesMax} bytes)`;
      return Promise.reject(new UplinkError('REFUSED', what, { refusal: TOO_LARGE }));
    }
    return new Promise((resolve, reject) => {
      this.pending.add(reject);
      c.publish(topic, message.body, options, (err, ack) => {
        this.pending.delete(reject);
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

  async close(): Promise<void> {
    const c = this.client;
    if (c === null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, CLOSE_GRACE_MS);
      c.end(false, {}, () => (clearTimeout(timer), resolve()));
    });
    this.lose(c, new UplinkError('CLOSED', 'closed'));
  }
}

/** PINGREQ on the live connection; any PINGRESP after it is the answer (keepalive pings are as good). */
function probe(c: MqttClient | null, timeoutMs: number): Promise<boolean> {
  if (c === null) return Promise.resolve(false);
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

/** The retained settings topic of this gateway: SUBSCRIBE at each connect, the messages that follow. */
function configChannel(t: MqttTransport): ConfigTopicChannel {
  const { configTopic, o } = t;
  return {
    topic: configTopic,
    async subscribe() {
      const c = t.live;
      if (c === null) throw new UplinkError('DISCONNECTED', `not connected to ${o.url}`);
      const granted = await c.subscribeAsync(configTopic, { qos: 1 }).catch((err: Error) => {
        throw new UplinkError('REJECTED', `subscribe to ${configTopic} failed: ${err.message}`, { cause: err });
      });
      // SUBACK code 0x80 (MQTT 3.1.1) or >= 0x80 (MQTT 5): the broker refused, e.g. by its ACL.
      if (granted.some((g) => g.qos >= 0x80))
        throw new UplinkError('REJECTED', `the broker refused a subscription to ${configTopic}`);
    },
    onMessage(listener) {
      t.configListeners.add(listener);
      return () => t.configListeners.delete(listener);
    },
  };
}

/** The `mqtt` transport over `options`; throws INVALID naming the option at fault. */
export function createMqttTransport(options: MqttTransportOptions): UplinkTransport {
  const t = new MqttTransport(validateMqttOptions(options));
  useCompactMqttEncoder();
  return {
    protocol: 'mqtt',
    connect: () => t.connect(),
    publish: (message) => t.publish(message),
    probe: (timeoutMs) => probe(t.live, timeoutMs),
    serverLimits: () => t.limits,
    onDisconnect: (listener) => t.onDisconnect(listener),
    destroy: () => t.destroy(),
    close: () => t.close(),
    configTopic: configChannel(t),
  };
}
