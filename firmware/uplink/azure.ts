import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { useCompactSdkMqttEncoder } from './azure-encoder.js';
import { D2C_MESSAGE_BYTES_MAX, d2cMessageBytes, sdkRefusal } from './azure-refusal.js';
import { UPSTREAM_KEY } from './message.js';
import { TOO_LARGE } from './refusal.js';
import {
  UplinkError,
  type MethodHandler,
  type TwinChannel,
  type UplinkMessage,
  type UplinkTransport,
} from './types.js';

// azure-iot-device is CommonJS; Node's ESM loader cannot see `Message`, which it re-exports through a getter.
const { Client, Message } = azureDevice;
export type DeviceClient = InstanceType<typeof Client>;
type Twin = Awaited<ReturnType<DeviceClient['getTwin']>>;

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

const KEEPALIVE_SECS_DEFAULT = 60;
/** `close()` waits this long for a polite disconnect before it gives up on the connection, ms. */
const CLOSE_GRACE_MS = 2_000;
/** IoT Hub's own upper bound for a direct method's response payload (128 KiB). */
const METHOD_RESPONSE_BYTES_MAX = 128 * 1024;
/** The pump owns retries; the SDK's retry policy would otherwise retry every operation on its own schedule. */
const NO_RETRY = { shouldRetry: () => false, nextRetryTimeout: () => -1 };

function validate(
  options: AzureTransportOptions,
): Required<Pick<AzureTransportOptions, 'keepaliveSecs'>> & AzureTransportOptions {
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
  if (!Number.isInteger(keepaliveSecs) || keepaliveSecs < 1 || keepaliveSecs > 1_740) {
    throw bad(`"keepaliveSecs" must be an integer from 1 to 1740 seconds (IoT Hub's maximum), got ${keepaliveSecs}`);
  }
  return { ...options, keepaliveSecs };
}

/**
 * Builds the IoT Hub message. Child devices' messages go out on the gateway's own device connection (IoT
 * Hub's MQTT endpoint cannot publish on behalf of another identity on one connection), so the originating
 * device is named in the application property `outpost-device-id` — routes and consumers filter on it.
 * The enqueue time goes in `iothub-creation-time-utc`, which IoT Hub takes as the message's creation time.
 */
function toAzureMessage(message: UplinkMessage): InstanceType<typeof Message> {
  const out = new Message(message.body);
  out.messageId = message.messageId;
  if (message.contentType) out.contentType = message.contentType as typeof out.contentType;
  if (message.contentEncoding) out.contentEncoding = message.contentEncoding as typeof out.contentEncoding;
  for (const [key, value] of Object.entries(message.properties)) out.properties.add(key, value);
  out.properties.add(UPSTREAM_KEY.deviceId, message.deviceId);
  out.properties.add('iothub-creation-time-utc', new Date(message.enqueuedAtMs).toISOString());
  // The SDK's MQTT transport builds a debug line of JSON.stringify(message) on every send, logging on or off:
  // the body as an array of numbers cost more CPU than the rest of the send (profile of bench transparent).
  Object.defineProperty(out, 'toJSON', { value: () => ({ messageId: message.messageId }) });
  return out;
}

/** The part of the mqtt.js client inside the SDK that `forceEnd` needs. */
interface SdkMqttClient {
  end(force: boolean, callback?: () => void): void;
  stream?: { destroy(): void };
}

/**
 * Destroys the socket under an SDK client at once. The SDK has no abort: its close() during a connect is
 * deferred until the connect ends, and over a black-holed link its mqtt.js waits out a 60 s CONNACK timeout
 * with the socket (and so the event loop) held open. The path is private to the SDK (client → Mqtt
 * transport → MqttBase → mqtt.js client); the azure tests pin it, and if it moved this falls back to close().
 */
function forceEnd(c: DeviceClient): void {
  type Internals = { _transport?: { _mqtt?: { _mqttClient?: SdkMqttClient } } };
  const inner = (c as unknown as Internals)._transport?._mqtt?._mqttClient;
  if (inner === undefined || typeof inner.end !== 'function') return;
  // end() is a no-op once a polite end(false) began, which the SDK's own close() may have started.
  inner.end(true);
  inner.stream?.destroy();
}

/**
 * The SDK reports a twin request IoT Hub answered with an error body (e.g. 400 for a key with '.') as a
 * plain Error, and transport failures as azure-iot-common's typed errors (NotConnectedError, TimeoutError):
 * the first is the cloud refusing this request, which sending it again cannot fix.
 */
function twinError(err: Error): UplinkError {
  const refused = Object.getPrototypeOf(err) === Error.prototype;
  return new UplinkError(refused ? 'REJECTED' : 'DISCONNECTED', `twin update failed: ${err.message}`, { cause: err });
}

/** What the socket errors of a failed connect mean, said in words an operator reads at a glance. */
const NETWORK_ERRORS: Record<string, string> = {
  ECONNRESET: 'connection reset',
  ECONNREFUSED: 'connection refused',
  ETIMEDOUT: 'connection timed out',
  EPIPE: 'connection closed',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ENOTFOUND: 'host name not found',
  EAI_AGAIN: 'host name lookup failed',
};
/** azure-iot-device-mqtt prefixes every error of a client's first connect with this, whatever the cause. */
const FIRST_CONNECT_PREFIX = 'Failure on first connection (Not authorized): ';
const AUTH_REFUSAL = /not authori[sz]ed|bad username or password|identifier rejected/i;

/**
 * The SDK calls a TCP reset on the first connect "(Not authorized)"; an operator then looks at keys while
 * the link is at fault. The label stays only when the hub itself refused the credentials (CONNACK).
 */
export function describeConnectError(err: Error): string {
  // translateError wraps what it does not recognise as "mqtt.js returned <message> error".
  const unwrapped = /^mqtt\.js returned (.*) error$/s.exec(err.message)?.[1] ?? err.message;
  const inner = unwrapped.startsWith(FIRST_CONNECT_PREFIX) ? unwrapped.slice(FIRST_CONNECT_PREFIX.length) : unwrapped;
  const codes = [(err as NodeJS.ErrnoException).code, ...[...inner.matchAll(/\b(E[A-Z_]{4,})\b/g)].map((m) => m[1])];
  const network = codes.map((code) => (code === undefined ? undefined : NETWORK_ERRORS[code])).find(Boolean);
  if (network !== undefined) return `${network} (${inner})`;
  if (inner !== unwrapped && AUTH_REFUSAL.test(inner)) return err.message;
  return inner;
}

/** A refusal of this message keeps the connection (REFUSED); any other failure means it is gone. */
function sendError(message: UplinkMessage, err: Error): UplinkError {
  const refusal = sdkRefusal(err);
  const what = `send of ${message.messageId} failed: ${err.name}: ${err.message}`;
  return refusal === null
    ? new UplinkError('REJECTED', what, { cause: err })
    : new UplinkError('REFUSED', what, { cause: err, refusal });
}

/** The `azure` transport: azure-iot-device + azure-iot-device-mqtt, a fresh SDK client per `connect()`. */
export function createAzureTransport(options: AzureTransportOptions): UplinkTransport {
  const o = validate(options);
  useCompactSdkMqttEncoder();
  const listeners = new Set<(cause: Error) => void>();
  const desiredListeners = new Set<(patch: Record<string, unknown>) => void>();
  const methods = new Map<string, MethodHandler>();
  // Rejecters of sends in flight: an SDK client torn down mid-send does not always call back.
  const pending = new Set<(err: Error) => void>();
  let client: DeviceClient | null = null;
  let connected = false;
  let twin: Twin | null = null;
  /** The desired section's $version as last read or patched: a patch at or below it is old news. */
  let desiredVersion = 0;
  /** Rejects the `connect()` under way, so destroy() does not wait for the SDK to give up on its own. */
  let abortConnect: ((err: Error) => void) | null = null;

  function lose(c: DeviceClient, cause: Error, closing = false): void {
    if (client !== c) return;
    const wasConnected = connected;
    client = null;
    connected = false;
    twin = null;
    c.removeAllListeners();
    c.on('error', () => {});
    forceEnd(c);
    // Not awaited: over a black-holed link the SDK's close waits for PUBACKs that will never come.
    if (!closing) c.close().catch(() => {});
    abortConnect?.(cause);
    abortConnect = null;
    for (const reject of pending) reject(cause);
    pending.clear();
    if (wasConnected) for (const listener of listeners) listener(cause);
  }

  function attachMethod(c: DeviceClient, name: string, handler: MethodHandler): void {
    c.onDeviceMethod(name, (request, response) => {
      handler(request.payload)
        .then(
          (result) => {
            const bytes = Buffer.byteLength(JSON.stringify(result.payload ?? null));
            if (bytes > METHOD_RESPONSE_BYTES_MAX)
              return response.send(500, { message: `response of ${bytes} bytes is over IoT Hub's limit` });
            return response.send(result.status, result.payload);
          },
          (err: unknown) => response.send(500, { message: err instanceof Error ? err.message : String(err) }),
        )
        .catch(() => {});
    });
  }

  async function connect(): Promise<void> {
    if (client !== null) lose(client, new UplinkError('CLOSED', 'replaced by a new connect()'));
    const c = o.createClient?.() ?? Client.fromConnectionString(o.connectionString, Mqtt);
    client = c;
    c.setRetryPolicy(NO_RETRY);
    c.on('error', (err: Error) =>
      lose(c, new UplinkError('DISCONNECTED', `IoT Hub error: ${err.message}`, { cause: err })),
    );
    c.on('disconnect', (reason?: { transportError?: Error }) => {
      const why = reason?.transportError?.message ?? 'disconnected';
      lose(c, new UplinkError('DISCONNECTED', `IoT Hub connection lost: ${why}`, { cause: reason?.transportError }));
    });
    let abort: (err: Error) => void = () => {};
    const aborted = new Promise<never>((_, reject) => (abort = reject));
    abortConnect = abort;
    try {
      await Promise.race([open(c), aborted]);
    } catch (err) {
      lose(c, new UplinkError('CLOSED', 'connect failed'));
      const why = describeConnectError(err as Error);
      throw new UplinkError('CONNECT', `cannot connect to IoT Hub: ${why}`, { cause: err });
    } finally {
      if (abortConnect === abort) abortConnect = null;
    }
  }

  async function open(c: DeviceClient): Promise<void> {
    await c.setOptions({ ca: o.ca, cert: o.cert, key: o.key, keepalive: o.keepaliveSecs });
    await c.open();
    if (client !== c) throw new UplinkError('CONNECT', 'connection torn down while connecting');
    connected = true;
    for (const [name, handler] of methods) attachMethod(c, name, handler);
    await o.onOpen?.(c);
    if (desiredListeners.size > 0) await currentTwin();
  }

  async function currentTwin(): Promise<Twin> {
    const c = client;
    if (c === null || !connected) throw new UplinkError('DISCONNECTED', 'not connected to IoT Hub');
    if (twin !== null) return twin;
    const fresh = await c.getTwin();
    if (client !== c) throw new UplinkError('DISCONNECTED', 'connection lost while fetching the twin');
    fresh.on('properties.desired', (patch: Record<string, unknown>) => {
      // The SDK fires this event with its own whole desired section after every GET and when a listener is
      // added, not only for patches: passed on, each GET would make the twin and scope syncs GET again,
      // forever. Only a cloud patch (its own object) with a $version newer than the last seen is a change.
      if (patch === fresh.properties.desired) return;
      const version = patch.$version;
      if (typeof version === 'number') {
        if (version <= desiredVersion) return;
        desiredVersion = version;
      }
      for (const listener of desiredListeners) listener(patch);
    });
    if (typeof fresh.properties.desired.$version === 'number') desiredVersion = fresh.properties.desired.$version;
    twin = fresh;
    return fresh;
  }

  const twinChannel: TwinChannel = {
    async get() {
      const t = await currentTwin();
      // A fresh GET each time: the twin may have changed while we were offline.
      await t.get();
      const version = t.properties.desired.$version;
      if (typeof version === 'number') desiredVersion = version;
      return { desired: { ...t.properties.desired }, reported: { ...t.properties.reported } };
    },
    async patchReported(patch) {
      const t = await currentTwin();
      await new Promise<void>((resolve, reject) =>
        t.properties.reported.update(patch, (err?: Error) => (err ? reject(twinError(err)) : resolve())),
      );
    },
    onDesired(listener) {
      desiredListeners.add(listener);
      if (connected) currentTwin().catch(() => {});
      return () => desiredListeners.delete(listener);
    },
  };

  function publish(message: UplinkMessage): Promise<void> {
    const c = client;
    if (c === null || !connected) return Promise.reject(new UplinkError('DISCONNECTED', 'not connected to IoT Hub'));
    const out = toAzureMessage(message);
    const bytes = d2cMessageBytes(out);
    // IoT Hub would close the connection on it, taking the window down, again at every reconnect.
    if (bytes > D2C_MESSAGE_BYTES_MAX) {
      const limit = `IoT Hub's ${D2C_MESSAGE_BYTES_MAX}-byte limit`;
      const what = `${message.messageId} is ${bytes} bytes with its properties, over ${limit}`;
      return Promise.reject(new UplinkError('REFUSED', what, { refusal: TOO_LARGE }));
    }
    return new Promise((resolve, reject) => {
      pending.add(reject);
      c.sendEvent(out).then(
        () => (pending.delete(reject), resolve()),
        (err: Error) => (pending.delete(reject), reject(sendError(message, err))),
      );
    });
  }

  return {
    protocol: 'azure',
    connect,
    publish,
    // The SDK has no round trip of its own to offer (its MQTT client's ping is internal): a wake while
    // "connected" treats the connection as dead and reconnects, which costs one connect, never a stall.
    probe: async () => false,
    onDisconnect(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
    async destroy() {
      if (client !== null) lose(client, new UplinkError('CLOSED', 'destroyed'));
    },
    async close() {
      const c = client;
      if (c === null) return;
      let timer: NodeJS.Timeout | undefined;
      const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
      await Promise.race([c.close().catch(() => {}), grace]);
      clearTimeout(timer);
      lose(c, new UplinkError('CLOSED', 'closed'), true);
    },
    twin: twinChannel,
    onMethod(name, handler) {
      methods.set(name, handler);
      if (client !== null && connected) attachMethod(client, name, handler);
    },
  };
}
