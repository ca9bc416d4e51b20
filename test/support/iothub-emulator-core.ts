import type tls from 'node:tls';
import { Aedes, type AedesPublishPacket, type AuthenticateError, type Client } from 'aedes';
import mqttPacket from 'mqtt-packet';
import { authenticate, type Accepted, type AuthMethod } from './iothub-emulator-auth.js';
import { C2dQueues, MethodCalls } from './iothub-emulator-cloud.js';
import { Registry } from './iothub-emulator-registry.js';
import { identityKey, Twins } from './iothub-emulator-twin.js';

/**
 * The device side of the emulator: aedes with IoT Hub's CONNECT rules, each connection bound to the identity
 * it authenticated as, publishes and subscriptions limited to that identity's topics, telemetry stamped as
 * IoT Hub stamps it, twins, methods and cloud-to-device delivery per identity.
 */

export interface TelemetryRecord {
  /** The authenticated identity (`iothub-connection-device-id`), whatever the message says about itself. */
  deviceId: string;
  moduleId?: string;
  /** Application and system (`$.mid`, `$.ct`, `$.ce`) properties from the topic's property bag. */
  properties: Record<string, string>;
  /** The same bag in the order sent, repeated names included (`properties` keeps the last of each). */
  propertyBag: [string, string][];
  /** What IoT Hub adds and routing queries see: `iothub-connection-device-id`, `-module-id`, `-auth-method`, ... */
  systemProperties: Record<string, string>;
  authMethod: AuthMethod;
  /** For an on-behalf-of connection: the gateway that authenticated it. */
  actorDeviceId?: string;
  body: Buffer;
}

/**
 * IoT Hub's device-to-cloud message limit, bytes: body plus property names and values. A message over it
 * is not acknowledged: IoT Hub closes the connection (MQTT 3.1.1 has no way to refuse one PUBLISH).
 */
export const D2C_MESSAGE_BYTES_MAX = 256 * 1024;
/** Telemetry kept for assertions; a test that needs more is doing something else. */
const TELEMETRY_RECORDS_MAX = 1_000_000;
/** Refused CONNECTs kept for assertions, newest last. */
const REFUSALS_KEPT_MAX = 1_000;
/**
 * C2D packet ids start here so they never meet the ids aedes hands out itself from 1 up (it only would for a
 * QoS 1 broker publish, which the emulator does not make; the margin is cheap).
 */
const C2D_PACKET_ID_FIRST = 40_000;
const PACKET_ID_MAX = 65_535;

/**
 * What `operations()` counts, per identity: accepted CONNECTs, twin GETs and reported PATCHes (refused ones
 * too), telemetry refused as over D2C_MESSAGE_BYTES_MAX, and CONNECTs refused by the connect-rate throttle.
 */
export type CountedOperation = 'connect' | 'twin-get' | 'twin-patch' | 'telemetry-too-large' | 'throttled';

export interface ConnectRefusal {
  clientId: string;
  returnCode: number;
  reason: string;
}

type C2dInFlight = Map<number, { deviceId: string; messageId: string }>;

export class EmulatorCore {
  readonly telemetry: TelemetryRecord[] = [];
  readonly registry = new Registry();
  readonly refusals: ConnectRefusal[] = [];
  protected readonly twins = new Twins();
  protected readonly methods = new MethodCalls();
  protected readonly c2d = new C2dQueues();
  protected readonly clients = new Map<string, Client>();
  protected readonly sessions = new WeakMap<Client, Accepted>();
  private readonly liveFilters = new WeakMap<Client, Set<string>>();
  private readonly everSubscribed = new Map<string, Set<string>>();
  private readonly c2dInFlight = new WeakMap<Client, C2dInFlight>();
  private readonly expiryTimers = new WeakMap<Client, NodeJS.Timeout>();
  /** Host names devices were told to dial (ours, or a proxy's in front of us). */
  protected readonly hostNames = new Set<string>();
  protected readonly telemetryListeners = new Set<(record: TelemetryRecord) => void>();
  private readonly counts = new Map<string, number>();
  private recentConnects: number[] = [];
  private nextC2dPacketId = C2D_PACKET_ID_FIRST;

  /** `connectsPerSecMax`: IoT Hub throttles new connections per hub (per unit); Infinity = never. */
  constructor(
    protected readonly broker: Aedes,
    protected connectsPerSecMax: number,
  ) {
    broker.authenticate = (client, username, password, done) => this.onConnect(client, username, password, done);
    broker.on('publish', (packet, client) => client !== null && this.onDevicePublish(client, packet));
    // Before the PUBACK: an error here makes aedes close the connection, as IoT Hub does.
    broker.authorizePublish = (client, packet, done) => done(client === null ? null : this.refusal(client, packet));
    broker.authorizeSubscribe = (client, sub, done) => done(null, this.mayReceive(client, sub.topic) ? sub : null);
    broker.on('client', (client) => this.onClient(client));
    broker.on('clientReady', (client) => this.flushC2d(client));
    broker.on('subscribe', (subs, client) => {
      for (const sub of subs) this.addFilter(client, sub.topic);
      this.flushC2d(client);
    });
    broker.on('unsubscribe', (topics, client) => {
      for (const topic of topics) this.liveFilters.get(client)?.delete(topic);
    });
    broker.on('clientDisconnect', (client) => this.onClientGone(client));
    this.registry.onChange(() => this.enforceRegistry());
  }

  /** How many times the identity (`<device>` or `<device>/<module>`) did `op` since the emulator started. */
  operations(key: string, op: CountedOperation): number {
    return this.counts.get(`${op}:${key}`) ?? 0;
  }

  isConnected(key: string): boolean {
    return this.clients.has(key);
  }

  /** True once the identity subscribed to exactly this topic filter (e.g. `$iothub/methods/POST/#`). */
  isSubscribed(key: string, filter: string): boolean {
    return this.everSubscribed.get(key)?.has(filter) ?? false;
  }

  /** True while the identity's current connection holds this filter. */
  protected listening(key: string, filter: string): boolean {
    const client = this.clients.get(key);
    return client !== undefined && (this.liveFilters.get(client)?.has(filter) ?? false);
  }

  /** `null` is sent as an empty payload, as IoT Hub answers a reported PATCH; `json` sends it as `null`. */
  protected send(key: string, topic: string, body: unknown, json = false): void {
    const payload = body === null && !json ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
    const packet = { cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false } as const;
    // aedes calls the callback unconditionally; a device that vanished meanwhile is simply not answered.
    this.clients.get(key)?.publish(packet, () => {});
  }

  /** Writes every queued C2D message to the device if it listens on its devicebound filter now. */
  protected flushC2d(client: Client): void {
    const session = this.sessions.get(client);
    if (session === undefined || session.moduleId !== undefined) return;
    const { deviceId } = session;
    const filter = `devices/${deviceId}/messages/devicebound/#`;
    if (this.clients.get(deviceId) !== client || !this.listening(deviceId, filter)) return;
    const inFlight = this.c2dInFlight.get(client)!;
    for (const message of this.c2d.toSend(deviceId)) {
      const bag = {
        '$.mid': message.messageId,
        '$.to': `/devices/${deviceId}/messages/devicebound`,
        ...message.properties,
      };
      const encoded = Object.entries(bag)
        .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
        .join('&');
      const packetId = this.nextC2dPacketId;
      this.nextC2dPacketId = packetId >= PACKET_ID_MAX ? C2D_PACKET_ID_FIRST : packetId + 1;
      inFlight.set(packetId, { deviceId, messageId: message.messageId });
      message.inFlight = true;
      // Written past aedes' own queue so its session store never redelivers: the C2D queue is IoT Hub's, not
      // the MQTT session's, and an unacknowledged message goes again on the device's next connection.
      const topic = `devices/${deviceId}/messages/devicebound/${encoded}`;
      client.conn.write(
        mqttPacket.generate({
          cmd: 'publish',
          topic,
          payload: message.body,
          qos: 1,
          messageId: packetId,
          dup: false,
          retain: false,
        }),
      );
    }
  }

  protected count(key: string, op: CountedOperation): void {
    this.counts.set(`${op}:${key}`, this.operations(key, op) + 1);
  }

  /** Drops connections whose identity is gone, disabled, or (on behalf of a gateway) out of its scope. */
  protected enforceRegistry(): void {
    for (const client of this.clients.values()) {
      const session = this.sessions.get(client);
      if (session !== undefined && !this.stillAuthorized(session)) client.close();
    }
  }

  private stillAuthorized(session: Accepted): boolean {
    const device = this.registry.device(session.deviceId);
    if (device === undefined || device.status !== 'enabled') return false;
    const { moduleId } = session;
    if (moduleId !== undefined && this.registry.module(session.deviceId, moduleId) === undefined) return false;
    if (session.method !== 'on-behalf-of') return true;
    const gateway = this.registry.device(session.actorDeviceId!);
    if (gateway === undefined || gateway.status !== 'enabled') return false;
    const isGatewayModule = session.moduleId !== undefined && session.deviceId === session.actorDeviceId;
    return isGatewayModule || this.registry.isChildOf(session.deviceId, session.actorDeviceId!);
  }

  private onConnect(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const now = Date.now();
    this.recentConnects = this.recentConnects.filter((at) => now - at < 1_000);
    this.recentConnects.push(now);
    if (this.recentConnects.length > this.connectsPerSecMax) {
      // IoT Hub answers a throttled MQTT connect with "server unavailable": transient, retry after a backoff.
      this.count(client.id, 'throttled');
      return done(this.refuse(client.id, 3, 'connect rate over the throttle'), false);
    }
    const result = authenticate(this.registry, this.hostNames, {
      clientId: client.id,
      username,
      password,
      socket: client.conn as tls.TLSSocket,
    });
    if ('returnCode' in result) return done(this.refuse(client.id, result.returnCode, result.reason), false);
    this.sessions.set(client, result);
    // IoT Hub ends a connection when its token expires (401003 IoTHubUnauthorized); an SDK renews by reconnecting.
    if (result.expiresAtMs !== undefined) {
      const timer = setTimeout(() => client.close(), Math.max(0, result.expiresAtMs - Date.now()));
      timer.unref();
      this.expiryTimers.set(client, timer);
    }
    done(null, true);
  }

  private refuse(clientId: string, returnCode: 2 | 3 | 4 | 5, reason: string): AuthenticateError {
    if (this.refusals.length >= REFUSALS_KEPT_MAX) this.refusals.shift();
    this.refusals.push({ clientId, returnCode, reason });
    return Object.assign(new Error(reason), { returnCode });
  }

  // 'client' comes before CONNACK, so an identity is known as soon as its `open()` resolves.
  private onClient(client: Client): void {
    this.clients.set(client.id, client);
    this.liveFilters.set(client, new Set());
    this.c2dInFlight.set(client, new Map());
    this.count(client.id, 'connect');
    // aedes keeps its parser private; its PUBACKs are the only sign a C2D message was taken.
    const parser = (client as unknown as { _parser: NodeJS.EventEmitter })._parser;
    parser.on('packet', (packet: { cmd: string; messageId?: number }) => {
      if (packet.cmd !== 'puback' || packet.messageId === undefined) return;
      const entry = this.c2dInFlight.get(client)?.get(packet.messageId);
      if (entry === undefined) return;
      this.c2dInFlight.get(client)!.delete(packet.messageId);
      this.c2d.complete(entry.deviceId, entry.messageId);
    });
  }

  private onClientGone(client: Client): void {
    clearTimeout(this.expiryTimers.get(client));
    if (this.clients.get(client.id) !== client) return;
    this.clients.delete(client.id);
    const session = this.sessions.get(client);
    if (session !== undefined && session.moduleId === undefined) this.c2d.requeue(session.deviceId);
  }

  private addFilter(client: Client, filter: string): void {
    const ever = this.everSubscribed.get(client.id) ?? new Set<string>();
    this.everSubscribed.set(client.id, ever.add(filter));
    this.liveFilters.get(client)?.add(filter);
  }

  /** IoT Hub lets an identity subscribe to its own cloud-bound topics only. */
  private mayReceive(client: Client, filter: string): boolean {
    const session = this.sessions.get(client);
    if (session === undefined) return false;
    const own = session.moduleId === undefined ? [`devices/${session.deviceId}/messages/devicebound/#`] : [];
    return [...own, '$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#', '$iothub/methods/POST/#'].includes(
      filter,
    );
  }

  private eventsPrefix(session: Accepted): string {
    const base = `devices/${session.deviceId}`;
    return `${session.moduleId === undefined ? base : `${base}/modules/${session.moduleId}`}/messages/events/`;
  }

  private refusal(client: Client, packet: { topic: string; payload: Buffer | string }): Error | null {
    const session = this.sessions.get(client);
    if (session === undefined) return new Error('not authenticated');
    const prefix = this.eventsPrefix(session);
    if (!packet.topic.startsWith(prefix)) {
      // Another identity's topics close the connection at IoT Hub; $iothub/ topics are the identity's own.
      if (packet.topic.startsWith('$iothub/')) return null;
      return new Error(`"${client.id}" may not publish on ${packet.topic}`);
    }
    let bytes = Buffer.byteLength(packet.payload);
    for (const [key, value] of new URLSearchParams(packet.topic.slice(prefix.length))) {
      bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
    }
    if (bytes <= D2C_MESSAGE_BYTES_MAX) return null;
    this.count(client.id, 'telemetry-too-large');
    return new Error(`message of ${bytes} bytes is over the ${D2C_MESSAGE_BYTES_MAX}-byte limit`);
  }

  private onDevicePublish(client: Client, packet: AedesPublishPacket): void {
    const session = this.sessions.get(client);
    if (session === undefined) return;
    const key = identityKey(session.deviceId, session.moduleId);
    const [pathPart = '', query = ''] = packet.topic.split('?');
    const rid = new URLSearchParams(query).get('$rid') ?? '';
    const prefix = this.eventsPrefix(session);
    if (pathPart.startsWith(prefix)) {
      const bag = [...new URLSearchParams(pathPart.slice(prefix.length))];
      this.record(session, bag, Buffer.from(packet.payload));
    } else if (pathPart === '$iothub/twin/GET/') {
      this.count(key, 'twin-get');
      this.send(key, `$iothub/twin/res/200/?$rid=${rid}`, this.twins.get(key));
    } else if (pathPart === '$iothub/twin/PATCH/properties/reported/') {
      this.count(key, 'twin-patch');
      const result = this.twins.patchReported(key, JSON.parse(packet.payload.toString()) as Record<string, unknown>);
      // IoT Hub's answer to a bad key: 400 with an error body, and nothing of the patch applied.
      if ('error' in result) {
        this.send(key, `$iothub/twin/res/400/?$rid=${rid}`, { errorCode: 400004, message: result.error });
      } else this.send(key, `$iothub/twin/res/204/?$rid=${rid}&$version=${result.version}`, null);
    } else if (pathPart.startsWith('$iothub/methods/res/')) {
      this.methods.answer(rid, Number(pathPart.split('/')[3]), packet.payload.toString());
    }
  }

  private record(session: Accepted, propertyBag: [string, string][], body: Buffer): void {
    const device = this.registry.device(session.deviceId);
    const systemProperties: Record<string, string> = {
      'iothub-connection-device-id': session.deviceId,
      ...(session.moduleId === undefined ? {} : { 'iothub-connection-module-id': session.moduleId }),
      'iothub-connection-auth-method': JSON.stringify({
        scope: session.moduleId === undefined ? 'device' : 'module',
        type: session.method === 'x509' ? 'x509Certificate' : 'sas',
        issuer: 'iothub',
        acceptingIpFilterRule: null,
      }),
      'iothub-connection-auth-generation-id': session.generationId ?? device?.generationId ?? '',
      'iothub-enqueuedtime': new Date().toISOString(),
    };
    const record: TelemetryRecord = {
      deviceId: session.deviceId,
      ...(session.moduleId === undefined ? {} : { moduleId: session.moduleId }),
      properties: Object.fromEntries(propertyBag),
      propertyBag,
      systemProperties,
      authMethod: session.method,
      ...(session.actorDeviceId === undefined ? {} : { actorDeviceId: session.actorDeviceId }),
      body,
    };
    if (this.telemetry.length < TELEMETRY_RECORDS_MAX) this.telemetry.push(record);
    for (const listener of this.telemetryListeners) listener(record);
  }
}
