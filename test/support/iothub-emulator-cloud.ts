import { randomUUID } from 'node:crypto';

/**
 * The service-to-device half of the emulator: direct methods and cloud-to-device messages, with IoT Hub's
 * documented limits and errors (https://learn.microsoft.com/azure/iot-hub/iot-hub-devguide-direct-methods,
 * .../iot-hub-devguide-messages-c2d, https://learn.microsoft.com/rest/api/iothub/common-error-codes).
 */

/** An IoT Hub service error: the six-digit code whose first three digits are the HTTP status. */
export class IotHubError extends Error {
  constructor(
    readonly errorCode: number,
    readonly errorName: string,
    message: string,
  ) {
    super(`${errorCode} ${errorName}: ${message}`);
  }

  get statusCode(): number {
    return Math.floor(this.errorCode / 1000);
  }
}

export interface MethodResult {
  status: number;
  payload: unknown;
}

/** IoT Hub's default `responseTimeoutInSeconds`; it accepts 5 to 300. */
export const METHOD_RESPONSE_TIMEOUT_SECS_DEFAULT = 30;
const METHOD_RESPONSE_TIMEOUT_SECS_MIN = 5;
const METHOD_RESPONSE_TIMEOUT_SECS_MAX = 300;
/** Calls awaiting a device's answer, in all; a test that needs more has lost its answers. */
const METHOD_CALLS_PENDING_MAX = 10_000;

type PendingMethod = { resolve: (r: MethodResult) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

export class MethodCalls {
  private readonly pending = new Map<string, PendingMethod>();
  private nextRequestId = 1;

  /**
   * Sends the request with `send(rid)` and waits for the answer. `timeoutMs` below IoT Hub's 5 s minimum is
   * allowed so tests need not wait; 404103 when the device cannot take it now, 504101 when it never answers.
   */
  invoke(
    online: boolean,
    send: (rid: string) => void,
    target: string,
    name: string,
    timeoutMs: number,
  ): Promise<MethodResult> {
    if (timeoutMs > METHOD_RESPONSE_TIMEOUT_SECS_MAX * 1000) {
      return Promise.reject(
        new IotHubError(
          400004,
          'ArgumentInvalid',
          `responseTimeoutInSeconds must be ${METHOD_RESPONSE_TIMEOUT_SECS_MIN} to ${METHOD_RESPONSE_TIMEOUT_SECS_MAX}`,
        ),
      );
    }
    if (!online) {
      const text = `"${target}" is not connected or not listening for methods`;
      return Promise.reject(new IotHubError(404103, 'DeviceNotOnline', text));
    }
    if (this.pending.size >= METHOD_CALLS_PENDING_MAX) {
      return Promise.reject(new IotHubError(429001, 'ThrottlingException', 'too many pending method calls'));
    }
    const rid = String(this.nextRequestId++);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        const text = `method "${name}" on "${target}" timed out after ${timeoutMs} ms`;
        reject(new IotHubError(504101, 'GatewayTimeout', text));
      }, timeoutMs);
      this.pending.set(rid, { resolve, reject, timer });
      send(rid);
    });
  }

  /** The device's `$iothub/methods/res/<status>/?$rid=<rid>`; an unknown or late rid is ignored, as IoT Hub does. */
  answer(rid: string, status: number, body: string): void {
    const call = this.pending.get(rid);
    if (call === undefined) return;
    this.pending.delete(rid);
    clearTimeout(call.timer);
    let payload: unknown = null;
    try {
      payload = body === '' ? null : JSON.parse(body);
    } catch {
      payload = body;
    }
    call.resolve({ status, payload });
  }

  failAll(error: Error): void {
    for (const call of this.pending.values()) {
      clearTimeout(call.timer);
      call.reject(error);
    }
    this.pending.clear();
  }
}

/** IoT Hub's per-device cloud-to-device queue depth; one more is refused with 403004. */
export const C2D_QUEUE_MESSAGES_MAX = 50;

export interface C2dMessage {
  messageId: string;
  body: Buffer;
  properties: Record<string, string>;
  /** Set while the message is written to a connection and its PUBACK not yet seen. */
  inFlight: boolean;
}

export class C2dQueues {
  private readonly queues = new Map<string, C2dMessage[]>();
  /** Message ids in the order devices acknowledged them. */
  readonly completed: { deviceId: string; messageId: string }[] = [];

  enqueue(deviceId: string, body: Buffer, properties: Record<string, string>, messageId = randomUUID()): C2dMessage {
    const queue = this.queues.get(deviceId) ?? [];
    if (queue.length >= C2D_QUEUE_MESSAGES_MAX) {
      throw new IotHubError(
        403004,
        'DeviceMaximumQueueDepthExceeded',
        `"${deviceId}" has ${C2D_QUEUE_MESSAGES_MAX} messages waiting`,
      );
    }
    const message = { messageId, body, properties, inFlight: false };
    queue.push(message);
    this.queues.set(deviceId, queue);
    return message;
  }

  /** Messages not yet written to the device's current connection. */
  toSend(deviceId: string): C2dMessage[] {
    return (this.queues.get(deviceId) ?? []).filter((m) => !m.inFlight);
  }

  pending(deviceId: string): number {
    return this.queues.get(deviceId)?.length ?? 0;
  }

  /** The device's PUBACK completes the message: only then does it leave the queue. */
  complete(deviceId: string, messageId: string): void {
    const queue = this.queues.get(deviceId) ?? [];
    const index = queue.findIndex((m) => m.messageId === messageId);
    if (index < 0) return;
    queue.splice(index, 1);
    this.completed.push({ deviceId, messageId });
  }

  /** A connection that ended took its unacknowledged messages with it: they go again on the next one. */
  requeue(deviceId: string): void {
    for (const message of this.queues.get(deviceId) ?? []) message.inFlight = false;
  }

  drop(deviceId: string): void {
    this.queues.delete(deviceId);
  }
}
