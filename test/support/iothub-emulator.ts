import http from 'node:http';
import tls from 'node:tls';
import { once } from 'node:events';
import { Aedes } from 'aedes';
import { createTestCa, type TestCa } from './tls-certs.js';
import { EmulatorCore, type TelemetryRecord } from './iothub-emulator-core.js';
import { METHOD_RESPONSE_TIMEOUT_SECS_DEFAULT, type MethodResult } from './iothub-emulator-cloud.js';
import {
  EDGE_HUB_MODULE_ID,
  newSymmetricKey,
  type DeviceIdentity,
  type DeviceOptions,
  type ModuleIdentity,
} from './iothub-emulator-registry.js';
import { scopeApiHandler, type ScopeApiOptions } from './iothub-emulator-scope-api.js';
import {
  isModulesRequest,
  modulesApiHandler,
  type ModuleRequest,
  type ModulesApiOptions,
} from './iothub-emulator-modules-api.js';
import { identityKey, type TwinState } from './iothub-emulator-twin.js';

export { D2C_MESSAGE_BYTES_MAX, type CountedOperation, type TelemetryRecord } from './iothub-emulator-core.js';
export { IotHubError, C2D_QUEUE_MESSAGES_MAX, type MethodResult } from './iothub-emulator-cloud.js';
export {
  EDGE_HUB_MODULE_ID,
  newSymmetricKey,
  type DeviceIdentity,
  type DeviceOptions,
} from './iothub-emulator-registry.js';
export type { ModuleRequest } from './iothub-emulator-modules-api.js';
export { SCOPE_API_VERSION } from './iothub-emulator-scope-api.js';
export type { TwinState } from './iothub-emulator-twin.js';

/**
 * An Azure IoT Hub stand-in for tests, written from IoT Hub's documentation and edgeHub's and the SDKs' code:
 * one TLS port, as IoT Hub's host name serves both, speaking MQTT (the device side,
 * https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub) and HTTPS (the device-scope API a
 * transparent gateway lists its children with), told apart by the first byte (an MQTT CONNECT is 0x10).
 * The real azure-iot-device SDK reaches it with `HostName=localhost:<port>` (it builds `mqtts://<HostName>`).
 *
 * The registry (devices, modules, parent/child scopes, status), CONNECT rules and stamping are in the
 * iothub-emulator-*.ts files; what a back end does with the service SDK is on this class.
 */

export interface EmulatorOptions {
  /** New connections accepted per second before CONNECTs are refused as throttled (IoT Hub: 100/s on S1). */
  connectsPerSecMax?: number;
  /** Identities per device-scope page at most, whatever the client asks for. */
  scopePageSizeMax?: number;
  /** Per device-scope request: an answer to send instead (to test a client's error handling). */
  onScopeRequest?: ScopeApiOptions['onRequest'];
  /** Per module registry request: an answer to send instead (401, 403, 5xx). */
  onModuleRequest?: ModulesApiOptions['onRequest'];
}

/** Time a TLS client may take to send its first byte before the socket is closed. */
const FIRST_BYTE_TIMEOUT_MS = 10_000;
const MQTT_CONNECT_FIRST_BYTE = 0x10;

export interface ServiceMethodRequest {
  methodName: string;
  payload?: unknown;
  /** IoT Hub's default is 30 s; below 5 s is allowed here so tests need not wait. */
  responseTimeoutInSeconds?: number;
}

export class IotHubEmulator extends EmulatorCore {
  /** The module registry API's requests, in order (method, ids, If-Match, status answered). */
  readonly moduleRequests: ModuleRequest[] = [];
  /** Set by a test at any time: an answer the module registry API sends instead. */
  onModuleRequest: ModulesApiOptions['onRequest'];
  private constructor(
    readonly ca: TestCa,
    broker: Aedes,
    private readonly server: tls.Server,
    private readonly api: http.Server,
    readonly port: number,
    connectsPerSecMax: number,
  ) {
    super(broker, connectsPerSecMax);
    this.registry.onChange((deviceId, moduleId) => {
      if (moduleId !== undefined && this.registry.module(deviceId, moduleId) === undefined) {
        this.twins.delete(identityKey(deviceId, moduleId));
      } else if (moduleId === undefined && this.registry.device(deviceId) === undefined) {
        this.twins.delete(deviceId);
        this.c2d.drop(deviceId);
      }
    });
  }

  static async start(options: EmulatorOptions = {}): Promise<IotHubEmulator> {
    const ca = await createTestCa();
    const serverCert = await ca.issue('localhost', ['localhost', '127.0.0.1']);
    const broker = await Aedes.createBroker();
    // Client certificates are requested but judged at CONNECT, so SAS devices connect without one.
    const server = tls.createServer({ ...serverCert, requestCert: true, rejectUnauthorized: false, ca: ca.cert });
    const api = http.createServer();
    server.on('secureConnection', (socket) => dispatch(socket, broker, api));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const hub = new IotHubEmulator(ca, broker, server, api, port, options.connectsPerSecMax ?? Infinity);
    const scope = scopeApiHandler(hub.registry, {
      pageSizeMax: options.scopePageSizeMax ?? Infinity,
      hostNames: hub.hostNames,
      onRequest: options.onScopeRequest,
    });
    const modules = modulesApiHandler(hub.registry, {
      hostNames: hub.hostNames,
      requests: hub.moduleRequests,
      onRequest: (method, path) => hub.onModuleRequest?.(method, path) ?? options.onModuleRequest?.(method, path),
    });
    api.on('request', (req, res) => (isModulesRequest(req) ? modules(req, res) : scope(req, res)));
    hub.hostNames.add(hub.hostName);
    return hub;
  }

  get hostName(): string {
    return `localhost:${this.port}`;
  }

  /** Makes `hostName` (e.g. a fault proxy's `localhost:<port>`) one that tokens and usernames may name. */
  allowHostName(hostName: string): void {
    this.hostNames.add(hostName);
  }

  /** Registers a SAS device (if new) and returns its connection string for `hostName`. */
  addDevice(deviceId: string, hostName = this.hostName): string {
    if (this.registry.device(deviceId) === undefined) this.registry.addDevice(deviceId);
    return this.connectionString(deviceId, undefined, hostName);
  }

  /** Registers a CA-signed X.509 device: it must present a certificate from `ca` with CN = deviceId. */
  addX509Device(deviceId: string, hostName = this.hostName): string {
    if (this.registry.device(deviceId) === undefined) {
      this.registry.addDevice(deviceId, { type: 'certificateAuthority' });
    }
    this.allowHostName(hostName);
    return `HostName=${hostName};DeviceId=${deviceId};x509=true`;
  }

  /** `az iot hub device-identity show`: undefined when there is no such device. */
  getDevice(deviceId: string): DeviceIdentity | undefined {
    return this.registry.device(deviceId);
  }

  /** `az iot hub device-identity create` (with `--edge-enabled` for `iotEdge: true`). */
  createDevice(deviceId: string, options: DeviceOptions = {}): DeviceIdentity {
    return this.registry.addDevice(deviceId, options);
  }

  /** `az iot hub module-identity create`; returns its connection string. */
  createModule(deviceId: string, moduleId: string, hostName = this.hostName): string {
    this.registry.addModule(deviceId, moduleId);
    return this.connectionString(deviceId, moduleId, hostName);
  }

  /** `... connection-string show`: the identity's primary-key connection string. */
  connectionString(deviceId: string, moduleId?: string, hostName = this.hostName): string {
    const identity = moduleId === undefined ? this.registry.device(deviceId) : this.registry.module(deviceId, moduleId);
    const key = identity?.authentication.symmetricKey.primaryKey;
    if (key === undefined || key === null) throw new Error(`no SAS identity "${identityKey(deviceId, moduleId)}"`);
    this.allowHostName(hostName);
    const module = moduleId === undefined ? '' : `;ModuleId=${moduleId}`;
    return `HostName=${hostName};DeviceId=${deviceId}${module};SharedAccessKey=${key}`;
  }

  /** Registers an IoT Edge device; returns its own and its `$edgeHub` module's connection strings. */
  createEdgeDevice(deviceId: string, hostName = this.hostName): { device: string; edgeHub: string } {
    this.registry.addDevice(deviceId, { iotEdge: true });
    return {
      device: this.connectionString(deviceId, undefined, hostName),
      edgeHub: this.connectionString(deviceId, EDGE_HUB_MODULE_ID, hostName),
    };
  }

  /** `az iot hub device-identity children add --device-id <gateway> --child-list <child>`. */
  addChild(gatewayId: string, childId: string): void {
    this.registry.addChild(gatewayId, childId);
  }

  removeChild(gatewayId: string, childId: string): void {
    this.registry.removeChild(gatewayId, childId);
  }

  /** Deletes the device, its modules and twins; a connection it holds is closed. */
  deleteDevice(deviceId: string): void {
    this.registry.removeDevice(deviceId);
  }

  /** The registry's module (the service API's GET), or undefined. */
  getModule(deviceId: string, moduleId: string): ModuleIdentity | undefined {
    return this.registry.module(deviceId, moduleId);
  }

  /** `az iot hub module-identity renew-key`: both keys replaced by fresh ones, a new etag. */
  renewModuleKeys(deviceId: string, moduleId: string): ModuleIdentity {
    return this.registry.setModuleKeys(deviceId, moduleId, newSymmetricKey(), newSymmetricKey());
  }

  deleteModule(deviceId: string, moduleId: string): void {
    this.registry.removeModule(deviceId, moduleId);
  }

  /** `status: disabled`: its connections are closed and new ones refused until enabled again. */
  disableDevice(deviceId: string): void {
    this.registry.setStatus(deviceId, 'disabled');
  }

  enableDevice(deviceId: string): void {
    this.registry.setStatus(deviceId, 'enabled');
  }

  setConnectThrottle(connectsPerSecMax: number): void {
    this.connectsPerSecMax = connectsPerSecMax;
  }

  onTelemetry(listener: (record: TelemetryRecord) => void): () => void {
    this.telemetryListeners.add(listener);
    return () => this.telemetryListeners.delete(listener);
  }

  /** What routing would see from one identity (`$connectionDeviceId`, `$connectionModuleId`), in arrival order. */
  telemetryOf(deviceId: string, moduleId?: string): TelemetryRecord[] {
    return this.telemetry.filter((r) => r.deviceId === deviceId && r.moduleId === moduleId);
  }

  /** The identity's twin (`<device>` or `<device>/<module>`), live: tests may read it as it changes. */
  twin(key: string): TwinState {
    return this.twins.get(key);
  }

  /** The service SDK's `getTwin`: a copy. */
  getTwin(deviceId: string, moduleId?: string): TwinState {
    return structuredClone(this.twins.get(identityKey(deviceId, moduleId)));
  }

  /** Merges a desired-properties patch and pushes it to the identity if it is connected; returns the version. */
  patchDesired(key: string, patch: Record<string, unknown>): number {
    const version = this.twins.patchDesired(key, patch);
    this.send(key, `$iothub/twin/PATCH/properties/desired/?$version=${version}`, { ...patch, $version: version });
    return version;
  }

  updateDesired(deviceId: string, moduleId: string | undefined, patch: Record<string, unknown>): number {
    return this.patchDesired(identityKey(deviceId, moduleId), patch);
  }

  /**
   * The service SDK's `Client.send`: queued (at most C2D_QUEUE_MESSAGES_MAX per device, else 403004) and
   * written to the device while it listens on `devices/<id>/messages/devicebound/#`; it leaves the queue
   * only on the device's PUBACK. Returns the message id.
   */
  sendC2d(deviceId: string, body: string | Buffer, properties: Record<string, string> = {}): string {
    if (this.registry.device(deviceId) === undefined) throw new Error(`404001 DeviceNotFound: "${deviceId}"`);
    const message = this.c2d.enqueue(deviceId, Buffer.from(body), properties);
    const client = this.clients.get(deviceId);
    if (client !== undefined) this.flushC2d(client);
    return message.messageId;
  }

  /** Messages queued for the device and not yet acknowledged by it. */
  c2dPending(deviceId: string): number {
    return this.c2d.pending(deviceId);
  }

  /** Message ids the device acknowledged, in order. */
  c2dCompleted(deviceId: string): string[] {
    return this.c2d.completed.filter((c) => c.deviceId === deviceId).map((c) => c.messageId);
  }

  /** The service SDK's `invokeDeviceMethod` (or module method): IoT Hub's errors as IotHubError. */
  invokeDeviceMethod(
    deviceId: string,
    moduleId: string | undefined,
    request: ServiceMethodRequest,
  ): Promise<MethodResult> {
    const key = identityKey(deviceId, moduleId);
    const timeoutMs = (request.responseTimeoutInSeconds ?? METHOD_RESPONSE_TIMEOUT_SECS_DEFAULT) * 1000;
    const online = this.listening(key, '$iothub/methods/POST/#');
    // The service API's payload is JSON; an absent one reaches the device as `null`.
    const send = (rid: string) =>
      this.send(key, `$iothub/methods/POST/${request.methodName}/?$rid=${rid}`, request.payload ?? null, true);
    return this.methods.invoke(online, send, key, request.methodName, timeoutMs);
  }

  /** Calls a direct method on a connected identity; `timeoutMs` as the response timeout. */
  invokeMethod(
    key: string,
    name: string,
    payload: unknown,
    timeoutMs = METHOD_RESPONSE_TIMEOUT_SECS_DEFAULT * 1000,
  ): Promise<MethodResult> {
    const [deviceId, moduleId] = key.split('/');
    const request = { methodName: name, payload, responseTimeoutInSeconds: timeoutMs / 1000 };
    return this.invokeDeviceMethod(deviceId!, moduleId, request);
  }

  /** Drops an identity's connection, as IoT Hub does on a throttling or service-side error. */
  disconnect(key: string): void {
    this.clients.get(key)?.close();
  }

  async stop(): Promise<void> {
    this.methods.failAll(new Error('IoT Hub emulator stopped'));
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    this.api.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
    await this.ca.dispose();
  }
}

/** Hands a TLS connection to aedes or to the HTTPS API by its first byte, which is put back first. */
function dispatch(socket: tls.TLSSocket, broker: Aedes, api: http.Server): void {
  socket.setTimeout(FIRST_BYTE_TIMEOUT_MS, () => socket.destroy());
  socket.once('readable', () => {
    const first = socket.read(1) as Buffer | null;
    socket.setTimeout(0);
    if (first === null) return void socket.destroy();
    socket.unshift(first);
    // Not before Node has noticed our 'readable' listener is gone: a reader that attaches while it still
    // counts is never told of the byte put back, and aedes would wait for a CONNECT it already has.
    setImmediate(() => {
      if (first[0] === MQTT_CONNECT_FIRST_BYTE) broker.handle(socket);
      else api.emit('connection', socket);
    });
  });
  socket.on('error', () => socket.destroy());
}
