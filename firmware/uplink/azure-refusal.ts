import { TOO_LARGE } from './refusal.js';
import type { Refusal } from './types.js';

/**
 * How IoT Hub's "no" to one device-to-cloud message is read on the azure transport. Over MQTT 3.1.1 IoT Hub
 * has no way to refuse a single PUBLISH: it closes the connection, so a message it can never take would
 * cost a reconnect per attempt. What can be known before sending (the size) is refused here instead, and
 * the SDK's typed errors (azure-iot-common, matched by name: the SDK's own copy of that package is not ours
 * to import) are sorted into refusals the pump understands.
 */

/**
 * IoT Hub's limit on one device-to-cloud message, bytes: 256 KiB counting the body and the names and values
 * of its system and application properties ("IoT Hub quotas and throttling", other limits; "Create and
 * read IoT Hub messages"). Over it IoT Hub closes the connection without a PUBACK.
 */
export const D2C_MESSAGE_BYTES_MAX = 256 * 1024;

/** The parts of the SDK's Message that count against the limit. */
export interface SizedMessage {
  data: Buffer;
  messageId?: string;
  contentType?: string;
  contentEncoding?: string;
  properties: { count(): number; getItem(index: number): { key: string; value: string } | undefined };
}

/** The message's size as IoT Hub counts it: body plus every property name and value, UTF-8 bytes. */
export function d2cMessageBytes(message: SizedMessage): number {
  let total = message.data.length;
  const system: Array<[string, string | undefined]> = [
    ['$.mid', message.messageId],
    ['$.ct', message.contentType],
    ['$.ce', message.contentEncoding],
  ];
  for (const [key, value] of system) if (value) total += Buffer.byteLength(key) + Buffer.byteLength(value);
  for (let i = 0; i < message.properties.count(); i += 1) {
    const item = message.properties.getItem(i);
    if (item !== undefined) total += Buffer.byteLength(item.key) + Buffer.byteLength(String(item.value));
  }
  return total;
}

/**
 * The SDK's errors that are IoT Hub refusing this message rather than the connection failing. Permanent:
 * the same bytes are refused again. The identity errors (unauthorized, device not found or disabled, hub
 * suspended) are temporary on purpose: they are about the device, not the message, and are put right
 * outside the gateway; as permanent ones they would move the whole backlog to the dead-letter lane, one
 * message per send, the moment a device was disabled. Anything not named here (NotConnectedError,
 * TimeoutError, a plain Error) is a lost connection.
 */
const SDK_REFUSALS: Record<string, Refusal> = {
  MessageTooLargeError: TOO_LARGE,
  FormatError: { reason: 'azure-format-error', permanent: true },
  ArgumentError: { reason: 'azure-argument-error', permanent: true },
  ArgumentOutOfRangeError: { reason: 'azure-argument-out-of-range', permanent: true },
  ThrottlingError: { reason: 'azure-throttled', permanent: false },
  IotHubQuotaExceededError: { reason: 'azure-quota-exceeded', permanent: false },
  DeviceMaximumQueueDepthExceededError: { reason: 'azure-queue-depth-exceeded', permanent: false },
  ServiceUnavailableError: { reason: 'azure-service-unavailable', permanent: false },
  InternalServerError: { reason: 'azure-internal-server-error', permanent: false },
  UnauthorizedError: { reason: 'azure-unauthorized', permanent: false },
  DeviceNotFoundError: { reason: 'azure-device-not-found', permanent: false },
  IoTHubSuspendedError: { reason: 'azure-hub-suspended', permanent: false },
};

/** The refusal an SDK send error stands for; null when it means the connection is gone. */
export function sdkRefusal(err: unknown): Refusal | null {
  if (!(err instanceof Error)) return null;
  return Object.hasOwn(SDK_REFUSALS, err.name) ? SDK_REFUSALS[err.name]! : null;
}
