import tls from 'node:tls';
import { once } from 'node:events';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import { createTestCa, type TestCa } from './tls-certs.js';

/**
 * An Azure IoT Hub stand-in for tests: aedes over TLS speaking the device side of IoT Hub's MQTT dialect
 * (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub), driven by the real azure-iot-device
 * SDK with `HostName=localhost:<port>` — the SDK builds `mqtts://<HostName>`, so a port in the host name
 * reaches us. It checks SAS tokens (or a client certificate whose CN is the device id), answers twin GET and
 * reported PATCH, pushes desired patches, invokes direct methods and records telemetry.
 */

export interface TelemetryRecord {
  deviceId: string;
  /** Application and system (`$.mid`, `$.ct`, `$.ce`) properties from the topic's property bag. */
  properties: Record<string, string>;
  body: Buffer;
}

export interface TwinState {
  desired: Record<string, unknown>;
  reported: Record<string, unknown>;
}

export interface MethodResult {
  status: number;
  payload: unknown;
}

/** A method call the device never answers fails after this long, as IoT Hub's response timeout does. */
const METHOD_TIMEOUT_MS_DEFAULT = 10_000;
/** Telemetry kept for assertions; a test that needs more is doing something else. */
const TELEMETRY_RECORDS_MAX = 1_000_000;

/**
 * IoT Hub's device-to-cloud message limit, bytes: body plus property names and values. A message over it
 * is not acknowledged: IoT Hub closes the connection (MQTT 3.1.1 has no way to refuse one PUBLISH).
 */
export const D2C_MESSAGE_BYTES_MAX = 256 * 1024;

/**
 * What `operations()` counts, per device: accepted CONNECTs, twin GETs and reported PATCHes (refused ones
 * too), and telemetry refused as over D2C_MESSAGE_BYTES_MAX.
 */
export type CountedOperation = 'connect' | 'twin-get' | 'twin-patch' | 'telemetry-too-large';

type PendingMethod = { resolve: (r: MethodResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class IotHubEmulator {
  readonly telemetry: TelemetryRecord[] = [];
  private readonly keys = new Map<string, string>();
  private readonly twins = new Map<string, TwinState>();
  private readonly clients = new Map<string, Client>();
  private readonly subscriptions = new Map<string, Set<string>>();
  /** Host names devices were told to dial (ours, or a proxy's in front of us). */
  private readonly hostNames = new Set<string>();
  private readonly pendingMethods = new Map<string, PendingMethod>();
  private readonly telemetryListeners = new Set<(record: TelemetryRecord) => void>();
  private nextRequestId = 1;
  private readonly counts = new Map<string, number>();

  private constructor(
    readonly ca: TestCa,
    private readonly broker: Aedes,
    private readonly server: tls.Server,
    readonly port: number,
  ) {}

  static async start(): Promise<IotHubEmulator> {
    const ca = await createTestCa();
    const serverCert = await ca.issue('localhost', ['localhost', '127.0.0.1']);
    const broker = await Aedes.createBroker();
    // Client certificates are requested but judged in `authenticate`, so SAS devices connect without one.
    const server = tls.createServer({ ...serverCert, requestCert: true, rejectUnauthorized: false, ca: ca.cert });
    server.on('secureConnection', (socket) => broker.handle(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const hub = new IotHubEmulator(ca, broker, server, port);
    broker.authenticate = (client, username, password, done) => done(null, hub.authenticate(client, username, password));
    broker.on('publish', (packet, client) => client !== null && hub.onDevicePublish(client, packet));
    // Before the PUBACK: an error here makes aedes close the connection, as IoT Hub does.
    broker.authorizePublish = (client, packet, done) => done(client === null ? null : hub.refusal(client, packet));
    // 'client' comes before CONNACK, so a device is known as soon as its `open()` resolves.
    broker.on('client', (client) => {
      hub.clients.set(client.id, client);
      hub.count(client.id, 'connect');
    });
    broker.on('subscribe', (subs, client) => {
      const filters = hub.subscriptions.get(client.id) ?? new Set();
      for (const sub of subs) filters.add(sub.topic);
      hub.subscriptions.set(client.id, filters);
    });
    broker.on('clientDisconnect', (client) => hub.clients.get(client.id) === client && hub.clients.delete(client.id));
    return hub;
  }

  get hostName(): string {
    return `localhost:${this.port}`;
  }

  /**
   * Registers a SAS device and returns its connection string. `hostName` is what the device dials, e.g.
   * a fault proxy's `localhost:<port>`; the SAS token and username must name that host.
   */
  addDevice(deviceId: string, hostName = this.hostName): string {
    const key = randomBytes(32).toString('base64');
    this.keys.set(deviceId, key);
    this.hostNames.add(hostName);
    return `HostName=${hostName};DeviceId=${deviceId};SharedAccessKey=${key}`;
  }

  /** Registers an X.509 device; it must present a certificate from `ca` with CN = deviceId. */
  addX509Device(deviceId: string, hostName = this.hostName): string {
    this.keys.set(deviceId, '');
    this.hostNames.add(hostName);
    return `HostName=${hostName};DeviceId=${deviceId};x509=true`;
  }

  isConnected(deviceId: string): boolean {
    return this.clients.has(deviceId);
  }

  /** True once the device subscribed to exactly this topic filter (e.g. `$iothub/methods/POST/#`). */
  isSubscribed(deviceId: string, filter: string): boolean {
    return this.subscriptions.get(deviceId)?.has(filter) ?? false;
  }

  /** How many times the device did `op` since the emulator started. */
  operations(deviceId: string, op: CountedOperation): number {
    return this.counts.get(`${op}:${deviceId}`) ?? 0;
  }

  private count(deviceId: string, op: CountedOperation): void {
    this.counts.set(`${op}:${deviceId}`, this.operations(deviceId, op) + 1);
  }

  onTelemetry(listener: (record: TelemetryRecord) => void): () => void {
    this.telemetryListeners.add(listener);
    return () => this.telemetryListeners.delete(listener);
  }

  twin(deviceId: string): TwinState {
    let twin = this.twins.get(deviceId);
    if (twin === undefined) {
      twin = { desired: { $version: 1 }, reported: { $version: 1 } };
      this.twins.set(deviceId, twin);
    }
    return twin;
  }

  /** Merges a desired-properties patch and pushes it to the device if it is connected; returns the version. */
  patchDesired(deviceId: string, patch: Record<string, unknown>): number {
    const desired = this.twin(deviceId).desired;
    mergePatch(desired, patch);
    const version = (desired.$version as number) + 1;
    desired.$version = version;
    this.send(deviceId, `$iothub/twin/PATCH/properties/desired/?$version=${version}`, { ...patch, $version: version });
    return version;
  }

  /** Calls a direct method on a connected device, as the service SDK's `invokeDeviceMethod` does. */
  invokeMethod(deviceId: string, name: string, payload: unknown, timeoutMs = METHOD_TIMEOUT_MS_DEFAULT): Promise<MethodResult> {
    const rid = String(this.nextRequestId++);
    return new Promise((resolve, reject) => {
      if (!this.clients.has(deviceId)) return reject(new Error(`device "${deviceId}" is not connected`));
      // IoT Hub answers 404 when the device has not subscribed to methods; so do we, rather than time out.
      if (!this.isSubscribed(deviceId, '$iothub/methods/POST/#')) {
        return reject(new Error(`device "${deviceId}" is not listening for methods (404)`));
      }
      const timer = setTimeout(() => {
        this.pendingMethods.delete(rid);
        reject(new Error(`method "${name}" on "${deviceId}" timed out after ${timeoutMs} ms`));
      }, timeoutMs);
      this.pendingMethods.set(rid, { resolve, reject, timer });
      this.send(deviceId, `$iothub/methods/POST/${name}/?$rid=${rid}`, payload);
    });
  }

  /** Drops a device's connection, as IoT Hub does on a throttling or service-side error. */
  disconnect(deviceId: string): void {
    this.clients.get(deviceId)?.close();
  }

  async stop(): Promise<void> {
    for (const pending of this.pendingMethods.values()) {
      clearTimeout(pending.timer);
      pending.reject(new Error('IoT Hub emulator stopped'));
    }
    this.pendingMethods.clear();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    this.server.close();
    await once(this.server, 'close');
    await this.ca.dispose();
  }

  private authenticate(client: Client, username: string | undefined, password: Buffer | undefined): boolean {
    const key = this.keys.get(client.id);
    const hostName = username?.slice(0, username.indexOf('/'));
    if (key === undefined || hostName === undefined || !this.hostNames.has(hostName)) return false;
    if (!username!.startsWith(`${hostName}/${client.id}/`)) return false;
    if (key === '') {
      const socket = client.conn as tls.TLSSocket;
      return socket.authorized && socket.getPeerCertificate().subject?.CN === client.id;
    }
    return password !== undefined && sasValid(password.toString(), key, `${hostName}/devices/${client.id}`);
  }

  private refusal(client: Client, packet: { topic: string; payload: Buffer | string }): Error | null {
    const prefix = `devices/${client.id}/messages/events/`;
    if (!packet.topic.startsWith(prefix)) return null;
    let bytes = Buffer.byteLength(packet.payload);
    for (const [key, value] of new URLSearchParams(packet.topic.slice(prefix.length))) {
      bytes += Buffer.byteLength(key) + Buffer.byteLength(value);
    }
    if (bytes <= D2C_MESSAGE_BYTES_MAX) return null;
    this.count(client.id, 'telemetry-too-large');
    return new Error(`message of ${bytes} bytes is over the ${D2C_MESSAGE_BYTES_MAX}-byte limit`);
  }

  private onDevicePublish(client: Client, packet: AedesPublishPacket): void {
    const [pathPart, query = ''] = packet.topic.split('?');
    const params = new URLSearchParams(query);
    const rid = params.get('$rid') ?? '';
    if (pathPart.startsWith(`devices/${client.id}/messages/events/`)) {
      const bag = new URLSearchParams(pathPart.slice(`devices/${client.id}/messages/events/`.length));
      this.record({ deviceId: client.id, properties: Object.fromEntries(bag), body: Buffer.from(packet.payload) });
    } else if (pathPart === '$iothub/twin/GET/') {
      this.count(client.id, 'twin-get');
      this.send(client.id, `$iothub/twin/res/200/?$rid=${rid}`, this.twin(client.id));
    } else if (pathPart === '$iothub/twin/PATCH/properties/reported/') {
      this.count(client.id, 'twin-patch');
      const patch = JSON.parse(packet.payload.toString()) as Record<string, unknown>;
      const bad = badKey(patch);
      if (bad !== null) {
        // IoT Hub's answer: 400 with an error body, and nothing of the patch applied.
        const message = `Property name '${bad}' contains invalid characters ('.', '$' or space)`;
        return this.send(client.id, `$iothub/twin/res/400/?$rid=${rid}`, { errorCode: 400004, message });
      }
      const reported = this.twin(client.id).reported;
      mergePatch(reported, patch);
      reported.$version = (reported.$version as number) + 1;
      this.send(client.id, `$iothub/twin/res/204/?$rid=${rid}&$version=${reported.$version}`, null);
    } else if (pathPart.startsWith('$iothub/methods/res/')) {
      const pending = this.pendingMethods.get(rid);
      if (pending === undefined) return;
      this.pendingMethods.delete(rid);
      clearTimeout(pending.timer);
      const body = packet.payload.toString();
      pending.resolve({ status: Number(pathPart.split('/')[3]), payload: body === '' ? null : JSON.parse(body) });
    }
  }

  private record(record: TelemetryRecord): void {
    if (this.telemetry.length < TELEMETRY_RECORDS_MAX) this.telemetry.push(record);
    for (const listener of this.telemetryListeners) listener(record);
  }

  private send(deviceId: string, topic: string, body: unknown): void {
    const payload = body === null ? Buffer.alloc(0) : Buffer.from(JSON.stringify(body));
    const packet = { cmd: 'publish', topic, payload, qos: 0, dup: false, retain: false } as const;
    // aedes calls the callback unconditionally; a device that vanished meanwhile is simply not answered.
    this.clients.get(deviceId)?.publish(packet, () => {});
  }
}

/** The first key, at any depth, that IoT Hub refuses in a twin document ('.', '$', space, control characters). */
function badKey(doc: Record<string, unknown>): string | null {
  for (const [key, value] of Object.entries(doc)) {
    if (/[.$ \u0000-\u001f\u007f-\u009f]/.test(key)) return key;
    const isObject = typeof value === 'object' && value !== null && !Array.isArray(value);
    const inner = isObject ? badKey(value as Record<string, unknown>) : null;
    if (inner !== null) return inner;
  }
  return null;
}

/** JSON merge patch (RFC 7386), which is how IoT Hub applies twin patches: null deletes a key. */
function mergePatch(target: Record<string, unknown>, patch: Record<string, unknown>): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$version') continue;
    if (value === null) delete target[key];
    else if (typeof value === 'object' && !Array.isArray(value)) {
      const current = target[key];
      const child = typeof current === 'object' && current !== null ? (current as Record<string, unknown>) : {};
      mergePatch(child, value as Record<string, unknown>);
      target[key] = child;
    } else target[key] = value;
  }
}

/** Checks `SharedAccessSignature sr=..&sig=..&se=..` as IoT Hub does: HMAC-SHA256 of "<sr>\n<se>", unexpired. */
function sasValid(token: string, keyBase64: string, resource: string): boolean {
  const fields = new Map<string, string>();
  for (const part of token.replace(/^SharedAccessSignature /, '').split('&')) {
    const eq = part.indexOf('=');
    fields.set(part.slice(0, eq), part.slice(eq + 1));
  }
  const sr = fields.get('sr') ?? '';
  const se = fields.get('se') ?? '';
  if (decodeURIComponent(sr) !== resource || Number(se) * 1000 < Date.now()) return false;
  const expected = createHmac('sha256', Buffer.from(keyBase64, 'base64')).update(`${sr}\n${se}`).digest();
  const given = Buffer.from(decodeURIComponent(fields.get('sig') ?? ''), 'base64');
  return given.length === expected.length && timingSafeEqual(given, expected);
}
