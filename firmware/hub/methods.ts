import { METHOD_SUBSCRIPTION, topic } from './topics.js';

/**
 * Direct methods to children, answered locally: from another child (`$outpost/methods/POST/...`) or from
 * the cloud through the gateway (see `cloudMethodHandler`). A target that is not connected, or not
 * listening for methods, gets the caller a 404 at once; one that does not answer in time, a 504.
 */

export interface MethodTarget {
  isConnected(deviceId: string): boolean;
  isSubscribed(deviceId: string, filter: string): boolean;
  deliver(deviceId: string, topic: string, payload: Buffer, qos: 0 | 1): Promise<void>;
}

export interface MethodResult {
  status: number;
  payload: Buffer;
  /** The 504 is the hub's own timer, not the device's answer (edge mode then leaves IoT Hub to time out). */
  timedOut?: true;
}

/** Calls awaiting an answer across all children; past it callers get 429. */
export const PENDING_METHODS_MAX = 256;
/**
 * Calls one child may have awaiting an answer, across targets: a child that calls without waiting (or calls
 * one that never answers) fills its own share, not the table every other caller and the cloud need.
 */
export const PENDING_METHODS_PER_CALLER_MAX = 16;
/** Calls awaiting one target's answer: a target that never answers ties up this many, then its callers get 429. */
export const PENDING_METHODS_PER_TARGET_MAX = 16;
/** The cloud's calls (`outpost.invokeChild`): trusted, so only the table and per-target limits bind them. */
export const CLOUD_CALLER = '$cloud';
/** IoT Hub's bound on a method request or response payload, bytes. */
export const METHOD_PAYLOAD_BYTES_MAX = 128 * 1024;

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

interface PendingCall {
  deviceId: string;
  caller: string;
  resolve: (r: MethodResult) => void;
  timer: NodeJS.Timeout;
}

export class MethodBroker {
  private readonly pending = new Map<string, PendingCall>();
  private nextRid = 1;

  constructor(
    private readonly target: MethodTarget,
    private readonly timeoutMs: number,
  ) {}

  /** `caller` is the calling child's connection id, or CLOUD_CALLER. */
  invoke(
    deviceId: string,
    method: string,
    payload: Buffer,
    timeoutMs = this.timeoutMs,
    caller = CLOUD_CALLER,
  ): Promise<MethodResult> {
    if (!this.target.isConnected(deviceId) || !this.target.isSubscribed(deviceId, METHOD_SUBSCRIPTION)) {
      return Promise.resolve({
        status: 404,
        payload: json({ message: `device "${deviceId}" is not connected or not listening for methods` }),
      });
    }
    const busy = this.busy(deviceId, caller);
    if (busy !== null) return Promise.resolve({ status: 429, payload: json({ message: busy }) });
    if (payload.length > METHOD_PAYLOAD_BYTES_MAX) {
      return Promise.resolve({
        status: 413,
        payload: json({ message: `method payload over ${METHOD_PAYLOAD_BYTES_MAX} bytes` }),
      });
    }
    const rid = (this.nextRid++).toString(16);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        const message = `method "${method}" on "${deviceId}" timed out after ${timeoutMs} ms`;
        resolve({ status: 504, payload: json({ message }), timedOut: true });
      }, timeoutMs);
      this.pending.set(rid, { deviceId, caller, resolve, timer });
      this.target
        .deliver(deviceId, topic.methodRequest(method, rid), payload, 0)
        .catch(() => this.settle(deviceId, rid, 404, json({ message: `device "${deviceId}" went away` })));
    });
  }

  /** Why a new call from `caller` to `deviceId` must wait (429), or null. */
  private busy(deviceId: string, caller: string): string | null {
    if (this.pending.size >= PENDING_METHODS_MAX) {
      return `${PENDING_METHODS_MAX} method calls already pending ("PENDING_METHODS_MAX")`;
    }
    let byCaller = 0;
    let byTarget = 0;
    for (const call of this.pending.values()) {
      if (call.caller === caller) byCaller += 1;
      if (call.deviceId === deviceId) byTarget += 1;
    }
    if (caller !== CLOUD_CALLER && byCaller >= PENDING_METHODS_PER_CALLER_MAX) {
      return (
        `"${caller}" already has ${PENDING_METHODS_PER_CALLER_MAX} method calls pending` +
        ' ("PENDING_METHODS_PER_CALLER_MAX")'
      );
    }
    if (byTarget >= PENDING_METHODS_PER_TARGET_MAX) {
      return (
        `"${deviceId}" already has ${PENDING_METHODS_PER_TARGET_MAX} method calls pending` +
        ' ("PENDING_METHODS_PER_TARGET_MAX")'
      );
    }
    return null;
  }

  /** A child answered `$iothub/methods/res/<status>/?$rid=`; only the device that was asked may answer. */
  onResponse(deviceId: string, rid: string, status: number, payload: Buffer): void {
    this.settle(deviceId, rid, status, payload);
  }

  onDisconnected(deviceId: string): void {
    for (const [rid, call] of this.pending) {
      if (call.deviceId === deviceId)
        this.settle(deviceId, rid, 404, json({ message: `device "${deviceId}" disconnected` }));
    }
  }

  private settle(deviceId: string, rid: string, status: number, payload: Buffer): void {
    const call = this.pending.get(rid);
    if (call === undefined || call.deviceId !== deviceId) return;
    this.pending.delete(rid);
    clearTimeout(call.timer);
    call.resolve({ status, payload });
  }

  stop(): void {
    for (const [rid, call] of this.pending) this.settle(call.deviceId, rid, 503, json({ message: 'hub stopping' }));
  }
}

/** Name of the gateway method the cloud calls to reach a child: payload `{deviceId, moduleId?, methodName, payload, responseTimeoutInSeconds?}`. */
export const CLOUD_INVOKE_METHOD = 'outpost.invokeChild';
/** IoT Hub's own ceiling for a direct method's responseTimeoutInSeconds (5..300 s); above it the default applies. */
const TIMEOUT_SECS_MAX = 300;

export function cloudMethodHandler(methods: MethodBroker) {
  return async (request: unknown): Promise<{ status: number; payload: unknown }> => {
    const r = (typeof request === 'object' && request !== null ? request : {}) as Record<string, unknown>;
    if (
      typeof r.deviceId !== 'string' ||
      typeof r.methodName !== 'string' ||
      !/^[A-Za-z0-9_.-]{1,128}$/.test(r.methodName)
    ) {
      return {
        status: 400,
        payload: { message: `${CLOUD_INVOKE_METHOD} needs {"deviceId": string, "methodName": string, "payload": any}` },
      };
    }
    const secs = r.responseTimeoutInSeconds;
    const timeoutMs = typeof secs === 'number' && secs > 0 && secs <= TIMEOUT_SECS_MAX ? secs * 1000 : undefined;
    if (r.moduleId !== undefined && typeof r.moduleId !== 'string')
      return { status: 400, payload: { message: `${CLOUD_INVOKE_METHOD}: "moduleId" must be a string` } };
    const target = r.moduleId === undefined ? r.deviceId : `${r.deviceId}/${r.moduleId}`;
    const result = await methods.invoke(target, r.methodName, json(r.payload ?? null), timeoutMs);
    let payload: unknown = null;
    try {
      payload = result.payload.length === 0 ? null : JSON.parse(result.payload.toString('utf8'));
    } catch {
      payload = result.payload.toString('utf8');
    }
    return { status: result.status, payload };
  };
}
