import azureCommon from 'azure-iot-common';
import azureDevice from 'azure-iot-device';
import { UPSTREAM_KEY } from './message.js';
import type { UplinkMessage } from './types.js';

/** What the `azure` transport takes from azure-iot-device: its client and message, and two SDK workarounds. */

// azure-iot-device is CommonJS; Node's ESM loader cannot see `Message`, which it re-exports through a getter.
const { Client, Message } = azureDevice;
export { Client };
export type DeviceClient = InstanceType<typeof Client>;
export type Twin = Awaited<ReturnType<DeviceClient['getTwin']>>;

/**
 * The SDK's MQTT transport logs "PUBACK: " + JSON.stringify(result) on every acknowledgement, log on or off.
 * The result holds the packet mqtt.js kept for a resend, a copy with its own copy of the body, which Buffer's
 * toJSON turns into one array element per byte: with the garbage it makes, more CPU than the rest of the send
 * (profile of bench transparent). The result is never read as JSON, so it is named instead. azure-iot-common is
 * the SDK's own copy (declared in package.json for it), so an SDK that stops sharing it fails the test.
 */
Object.defineProperty(azureCommon.results.MessageEnqueued.prototype, 'toJSON', {
  value: () => ({ messageEnqueued: true }),
});

/** The pump owns retries; the SDK's retry policy would otherwise retry every operation on its own schedule. */
export const NO_RETRY = { shouldRetry: () => false, nextRetryTimeout: () => -1 };

/**
 * Builds the IoT Hub message. Child devices' messages go out on the gateway's own device connection (IoT
 * Hub's MQTT endpoint cannot publish on behalf of another identity on one connection), so the originating
 * device is named in the application property `outpost-device-id` — routes and consumers filter on it.
 * The enqueue time goes in `iothub-creation-time-utc`, which IoT Hub takes as the message's creation time.
 */
export function toAzureMessage(message: UplinkMessage): InstanceType<typeof Message> {
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
export function forceEnd(c: DeviceClient): void {
  type Internals = { _transport?: { _mqtt?: { _mqttClient?: SdkMqttClient } } };
  const inner = (c as unknown as Internals)._transport?._mqtt?._mqttClient;
  if (inner === undefined || typeof inner.end !== 'function') return;
  // end() is a no-op once a polite end(false) began, which the SDK's own close() may have started.
  inner.end(true);
  inner.stream?.destroy();
}
