import type { DeviceClient } from './azure.js';

/**
 * Cloud-to-device messages and direct methods as they arrive on an SDK connection, below the SDK's own
 * handling, for edge mode's connections of children (firmware/uplink/edge/cloud.ts), which pass them on to a
 * child at the local hub.
 *
 * Why below the SDK: azure-iot-device-mqtt (1.16) subscribes `devices/<id>/messages/devicebound/#` at QoS 1,
 * but mqtt.js 4 sends the PUBACK as soon as the SDK's `handleMessage` returns, and the SDK's `complete()` is a
 * no-op over MQTT: IoT Hub would take a message as delivered before the child had it. Holding the callback of
 * `handleMessage` instead would stall mqtt.js's whole inbound stream (pings, methods) behind one slow child.
 * So the PUBACK packet of a held message is kept back in the mqtt.js client's `_sendPacket` and written when
 * the child's own PUBACK comes (or never, when the connection ends first: IoT Hub then delivers the message
 * again on the identity's next connection, as it does for any MQTT device that did not acknowledge).
 * Direct methods: the SDK emits `method_<name>` only for names registered with `onDeviceMethod`; a child's
 * method names are its own, so its requests are read from the same `message` event, whatever the name.
 * The paths (client → `_transport` → `_mqtt` (MqttBase) → `_mqttClient` (mqtt.js)) are private to the SDK;
 * test/firmware/uplink/edge/cloud.test.ts pins them through real SDK children.
 */

/** A cloud-to-device message held un-acknowledged at IoT Hub until `ack()`. */
export interface CloudMessage {
  /** IoT Hub's topic, `devices/<id>/messages/devicebound/<url-encoded properties>`, as it sent it. */
  topic: string;
  payload: Buffer;
  /** Writes the held PUBACK: IoT Hub completes the message. A no-op once the connection is gone. */
  ack(): void;
}

/** A direct method request; `respond` writes `$iothub/methods/res/<status>/?$rid=<rid>`. */
export interface CloudMethodCall {
  name: string;
  rid: string;
  payload: Buffer;
  respond(status: number, payload: Buffer): Promise<void>;
}

export interface DownlinkSink {
  onMessage(message: CloudMessage): void;
  onMethod(call: CloudMethodCall): void;
}

export type DownlinkKind = 'c2d' | 'methods';

/** The subscriptions of one connection, switched on and off as the child's own are. */
export interface Downlink {
  set(kind: DownlinkKind, on: boolean): Promise<void>;
}

interface IncomingPacket {
  qos: number;
  messageId?: number;
}

interface SdkMqttClient {
  connected: boolean;
  on(event: 'message', listener: (topic: string, payload: Buffer, packet: IncomingPacket) => void): void;
  _sendPacket(packet: { cmd: string; messageId?: number }, cb?: (err?: Error) => void, ...rest: unknown[]): void;
}

interface SdkTransport {
  _mqtt: {
    _mqttClient?: SdkMqttClient;
    publish(topic: string, payload: Buffer, options: { qos: 0; retain: false }, done: (err?: Error) => void): void;
  };
  _topics?: Record<string, { handler: (topic: string, payload: Buffer) => void } | undefined>;
  enableC2D(done: (err?: Error) => void): void;
  disableC2D(done: (err?: Error) => void): void;
  enableMethods(done: (err?: Error) => void): void;
  disableMethods(done: (err?: Error) => void): void;
}

const METHOD_TOPIC = /^\$iothub\/methods\/POST\/([^/?]+)\/?\?(.*)$/;
const DEVICEBOUND_TOPIC = /^devices\/[^/]+\/messages\/devicebound\//;

const settle = (resolve: () => void, reject: (err: Error) => void) => (err?: Error) => (err ? reject(err) : resolve());

/** Hooks an opened SDK client; throws if the SDK's internals are not where this reads them. */
export function attachDownlink(client: DeviceClient, sink: DownlinkSink): Downlink {
  const transport = (client as unknown as { _transport?: SdkTransport })._transport;
  const inner = transport?._mqtt?._mqttClient;
  if (transport === undefined || inner === undefined || typeof inner._sendPacket !== 'function') {
    throw new Error('azure-iot-device-mqtt no longer exposes its mqtt.js client; cannot hold C2D PUBACKs');
  }
  // The SDK's own dispatch of both topics is replaced: it would PUBACK-less emit events nobody listens to.
  for (const name of ['message', 'method']) {
    const topic = transport._topics?.[name];
    if (topic !== undefined) topic.handler = () => {};
  }
  const held = new Set<number>();
  const send = inner._sendPacket.bind(inner);
  inner._sendPacket = (packet, cb, ...rest) => {
    if (packet.cmd !== 'puback' || packet.messageId === undefined || !held.has(packet.messageId)) {
      return send(packet, cb, ...rest);
    }
    // mqtt.js reads its next packet once this calls back; the PUBACK itself waits for the child's.
    cb?.();
  };
  inner.on('message', (topic, payload, packet) => {
    const method = METHOD_TOPIC.exec(topic);
    if (method !== null) return sink.onMethod(methodCall(transport, method[1]!, method[2]!, payload));
    if (!DEVICEBOUND_TOPIC.test(topic) || packet.qos !== 1 || packet.messageId === undefined) return;
    const messageId = packet.messageId;
    held.add(messageId);
    let acked = false;
    sink.onMessage({
      topic,
      payload,
      ack: () => {
        if (acked || !held.delete(messageId)) return;
        acked = true;
        if (inner.connected) send({ cmd: 'puback', messageId });
      },
    });
  });
  return {
    set: (kind, on) =>
      new Promise<void>((resolve, reject) => {
        const done = settle(resolve, reject);
        if (kind === 'c2d') return on ? transport.enableC2D(done) : transport.disableC2D(done);
        return on ? transport.enableMethods(done) : transport.disableMethods(done);
      }),
  };
}

function methodCall(transport: SdkTransport, name: string, query: string, payload: Buffer): CloudMethodCall {
  const rid = new URLSearchParams(query).get('$rid') ?? '';
  let decoded = '';
  try {
    decoded = decodeURIComponent(name);
  } catch {
    // A bad escape: an empty name, which the relay refuses with 400.
  }
  return {
    name: decoded,
    rid,
    payload,
    respond: (status, body) =>
      new Promise<void>((resolve, reject) => {
        const topic = `$iothub/methods/res/${status}/?$rid=${encodeURIComponent(rid)}`;
        transport._mqtt.publish(topic, body, { qos: 0, retain: false }, settle(resolve, reject));
      }),
  };
}
