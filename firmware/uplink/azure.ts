import { Mqtt } from 'azure-iot-device-mqtt';
import { useCompactSdkMqttEncoder } from './azure-encoder.js';
import { describeConnectError, sendError } from './azure-errors.js';
import { validateAzureOptions, type AzureTransportOptions, type ValidAzureOptions } from './azure-options.js';
import { D2C_MESSAGE_BYTES_MAX, d2cMessageBytes } from './azure-refusal.js';
import { Client, forceEnd, NO_RETRY, toAzureMessage, type DeviceClient } from './azure-sdk.js';
import { AzureTwin } from './azure-twin.js';
import { TOO_LARGE } from './refusal.js';
import { UplinkError, type MethodHandler, type UplinkMessage, type UplinkTransport } from './types.js';

/**
 * The `azure` transport: azure-iot-device + azure-iot-device-mqtt, a fresh SDK client per `connect()`. Its
 * options are in azure-options.ts, the SDK's message and internals in azure-sdk.ts, the twin in azure-twin.ts
 * and the mapping of the SDK's errors in azure-errors.ts.
 */

export { describeConnectError } from './azure-errors.js';
export type { AzureTransportOptions } from './azure-options.js';
export type { DeviceClient } from './azure-sdk.js';

/** `close()` waits this long for a polite disconnect before it gives up on the connection, ms. */
const CLOSE_GRACE_MS = 2_000;
/** IoT Hub's own upper bound for a direct method's response payload (128 KiB). */
const METHOD_RESPONSE_BYTES_MAX = 128 * 1024;

class AzureTransport {
  private readonly listeners = new Set<(cause: Error) => void>();
  private readonly methods = new Map<string, MethodHandler>();
  // Rejecters of sends in flight: an SDK client torn down mid-send does not always call back.
  private readonly pending = new Set<(err: Error) => void>();
  private client: DeviceClient | null = null;
  private connected = false;
  /** Rejects the `connect()` under way, so destroy() does not wait for the SDK to give up on its own. */
  private abortConnect: ((err: Error) => void) | null = null;
  readonly twin = new AzureTwin(() => (this.connected ? this.client : null));

  constructor(private readonly o: ValidAzureOptions) {}

  onDisconnect(listener: (cause: Error) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onMethod(name: string, handler: MethodHandler): void {
    this.methods.set(name, handler);
    if (this.client !== null && this.connected) attachMethod(this.client, name, handler);
  }

  private lose(c: DeviceClient, cause: Error, closing = false): void {
    if (this.client !== c) return;
    const wasConnected = this.connected;
    this.client = null;
    this.connected = false;
    this.twin.reset();
    c.removeAllListeners();
    c.on('error', () => {});
    forceEnd(c);
    // Not awaited: over a black-holed link the SDK's close waits for PUBACKs that will never come.
    if (!closing) c.close().catch(() => {});
    this.abortConnect?.(cause);
    this.abortConnect = null;
    for (const reject of this.pending) reject(cause);
    this.pending.clear();
    if (wasConnected) for (const listener of this.listeners) listener(cause);
  }

  async connect(): Promise<void> {
    if (this.client !== null) this.lose(this.client, new UplinkError('CLOSED', 'replaced by a new connect()'));
    const c = this.o.createClient?.() ?? Client.fromConnectionString(this.o.connectionString, Mqtt);
    this.client = c;
    c.setRetryPolicy(NO_RETRY);
    c.on('error', (err: Error) =>
      this.lose(c, new UplinkError('DISCONNECTED', `IoT Hub error: ${err.message}`, { cause: err })),
    );
    c.on('disconnect', (reason?: { transportError?: Error }) => {
      const why = reason?.transportError?.message ?? 'disconnected';
      const cause = reason?.transportError;
      this.lose(c, new UplinkError('DISCONNECTED', `IoT Hub connection lost: ${why}`, { cause }));
    });
    let abort: (err: Error) => void = () => {};
    const aborted = new Promise<never>((_, reject) => (abort = reject));
    this.abortConnect = abort;
    try {
      await Promise.race([this.open(c), aborted]);
    } catch (err) {
      this.lose(c, new UplinkError('CLOSED', 'connect failed'));
      const why = describeConnectError(err as Error);
      throw new UplinkError('CONNECT', `cannot connect to IoT Hub: ${why}`, { cause: err });
    } finally {
      if (this.abortConnect === abort) this.abortConnect = null;
    }
  }

  private async open(c: DeviceClient): Promise<void> {
    const o = this.o;
    await c.setOptions({ ca: o.ca, cert: o.cert, key: o.key, keepalive: o.keepaliveSecs });
    await c.open();
    if (this.client !== c) throw new UplinkError('CONNECT', 'connection torn down while connecting');
    this.connected = true;
    for (const [name, handler] of this.methods) attachMethod(c, name, handler);
    await o.onOpen?.(c);
    await this.twin.prime();
  }

  publish(message: UplinkMessage): Promise<void> {
    const c = this.client;
    if (c === null || !this.connected)
      return Promise.reject(new UplinkError('DISCONNECTED', 'not connected to IoT Hub'));
    const out = toAzureMessage(message);
    const bytes = d2cMessageBytes(out);
    // IoT Hub would close the connection on it, taking the window down, again at every reconnect.
    if (bytes > D2C_MESSAGE_BYTES_MAX) {
      const limit = `IoT Hub's ${D2C_MESSAGE_BYTES_MAX}-byte limit`;
      const what = `${message.messageId} is ${bytes} bytes with its properties, over ${limit}`;
      return Promise.reject(new UplinkError('REFUSED', what, { refusal: TOO_LARGE }));
    }
    return new Promise((resolve, reject) => {
      this.pending.add(reject);
      c.sendEvent(out).then(
        () => (this.pending.delete(reject), resolve()),
        (err: Error) => (this.pending.delete(reject), reject(sendError(message, err))),
      );
    });
  }

  async destroy(): Promise<void> {
    if (this.client !== null) this.lose(this.client, new UplinkError('CLOSED', 'destroyed'));
  }

  async close(): Promise<void> {
    const c = this.client;
    if (c === null) return;
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_GRACE_MS)));
    await Promise.race([c.close().catch(() => {}), grace]);
    clearTimeout(timer);
    this.lose(c, new UplinkError('CLOSED', 'closed'), true);
  }
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

/** The `azure` transport over `options`; throws INVALID naming the option at fault. */
export function createAzureTransport(options: AzureTransportOptions): UplinkTransport {
  const t = new AzureTransport(validateAzureOptions(options));
  useCompactSdkMqttEncoder();
  return {
    protocol: 'azure',
    connect: () => t.connect(),
    publish: (message) => t.publish(message),
    // The SDK has no round trip of its own to offer (its MQTT client's ping is internal): a wake while
    // "connected" treats the connection as dead and reconnects, which costs one connect, never a stall.
    probe: async () => false,
    onDisconnect: (listener) => t.onDisconnect(listener),
    destroy: () => t.destroy(),
    close: () => t.close(),
    twin: t.twin,
    onMethod: (name, handler) => t.onMethod(name, handler),
  };
}
