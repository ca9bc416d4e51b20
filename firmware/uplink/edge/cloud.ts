import type { CloudMessage, CloudMethodCall, DownlinkSink } from '../azure-downlink.js';
import type { IdentityLink } from './link.js';
import {
  C2D_PENDING_MAX,
  C2D_PENDING_PER_IDENTITY_MAX,
  CLOUD_METHOD_CALLS_PENDING_MAX,
  CLOUD_METHOD_WAIT_MS,
} from './limits.js';
import { splitIdentity } from './token.js';

/**
 * Cloud → child in edge mode: what IoT Hub sends a child on the child's own upstream connection reaches the
 * child at the local hub, with IoT Hub's semantics.
 * - Presence: a child connected locally keeps its upstream connection open (pool.retain), so that IoT Hub
 *   sees it online; it goes when the child leaves, after the idle time.
 * - Subscriptions mirror the child's: its upstream connection listens for C2D and methods only while the child
 *   does, so IoT Hub answers a call to a child that left with its own 404103 DeviceNotOnline, and keeps the
 *   C2D messages queued for it, as it does for a device connected directly.
 * - C2D: delivered at QoS 1 on the child's devicebound topic, exactly as IoT Hub wrote it (its `$.mid`, `$.to`,
 *   application properties); completed at IoT Hub by the PUBACK held until the child's own. A child gone before
 *   its PUBACK gets the message again when it subscribes again; a connection gone takes the held messages with
 *   it and IoT Hub sends them again on the next (MQTT has no reject or abandon: it re-delivers what was not
 *   acknowledged, counting the delivery, as for any MQTT device).
 * - Methods: any name, passed to the child; its status and payload go back. No answer: the gateway sends none,
 *   and IoT Hub gives the caller its 504101 GatewayTimeout.
 */

/** The local hub, as edge mode sees it (firmware/hub provides it; the runtime connects the two). */
export interface LocalChildren {
  /** Children connected now. */
  connected(): string[];
  isSubscribed(id: string, filter: string): boolean;
  /** QoS 1: resolves on the child's PUBACK, rejects if it is not connected or leaves first. */
  deliver(id: string, topic: string, payload: Buffer, qos: 1): Promise<void>;
  /** `timedOut` when the child did not answer within `timeoutMs`. */
  invoke(
    id: string,
    method: string,
    payload: Buffer,
    timeoutMs: number,
  ): Promise<{ status: number; payload: Buffer; timedOut?: true }>;
  /** Children connecting, leaving, subscribing; returns an unsubscribe. */
  onChange(listener: (event: LocalChildEvent) => void): () => void;
}

export type LocalChildEvent =
  { id: string; kind: 'connected' | 'disconnected' } | { id: string; kind: 'subscribed'; filter: string };

export interface CloudRelayStatus {
  c2dPending: number;
  c2dDelivered: number;
  /** Left un-acknowledged over C2D_PENDING_* (IoT Hub sends them again on the next connection). */
  c2dDeferred: number;
  /** Not on the identity's own devicebound topic: never passed on. */
  c2dRefused: number;
  methodsPending: number;
  methodsAnswered: number;
  /** Answered 429 over CLOUD_METHOD_CALLS_PENDING_MAX, or 400 for a name no MQTT topic can carry. */
  methodsRefused: number;
  /** Not answered: the child did not answer in time (IoT Hub's caller gets 504101). */
  methodsTimedOut: number;
}

const METHODS_FILTER = '$iothub/methods/POST/#';
const METHOD_NAME = /^[^#+/\u0000]{1,128}$/;
const deviceboundFilter = (deviceId: string) => `devices/${deviceId}/messages/devicebound/#`;

interface Presence {
  retain(identity: string): void;
  release(identity: string): void;
}

interface HeldC2d {
  message: CloudMessage;
  delivering: boolean;
}

export class EdgeCloudRelay {
  private local: LocalChildren | null = null;
  private detach: (() => void) | null = null;
  private readonly links = new Map<string, IdentityLink>();
  private readonly held = new Map<string, HeldC2d[]>();
  private heldCount = 0;
  private methodsPending = 0;
  private readonly counts = {
    c2dDelivered: 0,
    c2dDeferred: 0,
    c2dRefused: 0,
    methodsAnswered: 0,
    methodsRefused: 0,
    methodsTimedOut: 0,
  };

  constructor(
    private readonly pool: Presence,
    private readonly gatewayId: string,
    private readonly reportError: (err: Error) => void,
  ) {}

  /** Where one identity's link hands its downlink traffic. */
  sinkFor(identity: string): DownlinkSink {
    return {
      onMessage: (message) => this.received(identity, message),
      onMethod: (call) => {
        this.call(identity, call).catch((err: Error) =>
          this.reportError(new Error(`method "${call.name}" for "${identity}" from IoT Hub: ${err.message}`)),
        );
      },
    };
  }

  /** Registers a link made for the pool: the relay switches its subscriptions and forgets its held messages. */
  track(link: IdentityLink): IdentityLink {
    this.links.set(link.identity, link);
    link.transport.onDisconnect(() => this.forget(link.identity));
    return link;
  }

  attach(local: LocalChildren): void {
    this.detach?.();
    this.local = local;
    this.detach = local.onChange((event) => this.changed(event));
    // Children that connected before the uplink started.
    for (const id of local.connected()) {
      this.changed({ id, kind: 'connected' });
      const { deviceId } = splitIdentity(id);
      for (const filter of [METHODS_FILTER, deviceboundFilter(deviceId)]) {
        if (local.isSubscribed(id, filter)) this.changed({ id, kind: 'subscribed', filter });
      }
    }
  }

  status(): CloudRelayStatus {
    return { c2dPending: this.heldCount, methodsPending: this.methodsPending, ...this.counts };
  }

  close(): void {
    this.detach?.();
    this.detach = null;
    this.local = null;
  }

  private changed(event: LocalChildEvent): void {
    const { id } = event;
    if (id === this.gatewayId) return;
    if (event.kind !== 'subscribed') {
      if (event.kind === 'connected') return this.pool.retain(id);
      this.pool.release(id);
      this.subscribe(id, 'c2d', false);
      return this.subscribe(id, 'methods', false);
    }
    const { deviceId, moduleId } = splitIdentity(id);
    if (event.filter === METHODS_FILTER) this.subscribe(id, 'methods', true);
    // IoT Hub has no cloud-to-device messages for modules.
    if (moduleId === undefined && event.filter === deviceboundFilter(deviceId)) {
      this.subscribe(id, 'c2d', true);
      this.flush(id);
    }
  }

  private subscribe(id: string, kind: 'c2d' | 'methods', on: boolean): void {
    const downlink = this.links.get(id)?.downlink;
    downlink?.set(kind, on).catch((err: Error) => {
      const what = `${on ? 'subscribing' : 'unsubscribing'} ${kind} upstream for "${id}"`;
      this.reportError(new Error(`${what}: ${err.message}`));
    });
  }

  private received(id: string, message: CloudMessage): void {
    // IoT Hub writes only the identity's own topic; anything else on its connection is not for its child.
    if (!message.topic.startsWith(deviceboundFilter(splitIdentity(id).deviceId).slice(0, -1))) {
      this.counts.c2dRefused += 1;
      return;
    }
    const list = this.held.get(id) ?? [];
    if (list.length >= C2D_PENDING_PER_IDENTITY_MAX || this.heldCount >= C2D_PENDING_MAX) {
      this.counts.c2dDeferred += 1;
      return;
    }
    list.push({ message, delivering: false });
    this.held.set(id, list);
    this.heldCount += 1;
    this.flush(id);
  }

  /** Offers the held messages to the child if it listens now; each is acknowledged upstream on its PUBACK. */
  private flush(id: string): void {
    const local = this.local;
    const list = this.held.get(id);
    if (local === null || list === undefined) return;
    const { deviceId } = splitIdentity(id);
    if (!local.isSubscribed(id, deviceboundFilter(deviceId))) return;
    for (const entry of list) {
      if (entry.delivering) continue;
      entry.delivering = true;
      local.deliver(id, entry.message.topic, entry.message.payload, 1).then(
        () => this.delivered(id, entry),
        () => (entry.delivering = false),
      );
    }
  }

  private delivered(id: string, entry: HeldC2d): void {
    const list = this.held.get(id);
    const index = list?.indexOf(entry) ?? -1;
    if (list === undefined || index < 0) return;
    list.splice(index, 1);
    this.heldCount -= 1;
    this.counts.c2dDelivered += 1;
    entry.message.ack();
  }

  /** The identity's connection ended: its held messages can no longer be acknowledged; IoT Hub re-sends them. */
  private forget(id: string): void {
    this.heldCount -= this.held.get(id)?.length ?? 0;
    this.held.delete(id);
  }

  private async call(id: string, call: CloudMethodCall): Promise<void> {
    const local = this.local;
    const answer = (status: number, payload: Buffer) => call.respond(status, payload).catch(() => {});
    const refuse = (status: number, message: string) => {
      this.counts.methodsRefused += 1;
      return answer(status, Buffer.from(JSON.stringify({ message })));
    };
    // The name goes into the child's topic: MQTT wildcards, levels or NUL there would be another topic.
    if (!METHOD_NAME.test(call.name)) return refuse(400, 'a method name of 1 to 128 characters without #+/');
    if (local === null) return refuse(503, 'the local hub is not running');
    if (this.methodsPending >= CLOUD_METHOD_CALLS_PENDING_MAX) {
      return refuse(429, `${CLOUD_METHOD_CALLS_PENDING_MAX} calls pending ("CLOUD_METHOD_CALLS_PENDING_MAX")`);
    }
    this.methodsPending += 1;
    try {
      const result = await local.invoke(id, call.name, call.payload, CLOUD_METHOD_WAIT_MS);
      if (result.timedOut) this.counts.methodsTimedOut += 1;
      else {
        this.counts.methodsAnswered += 1;
        await answer(result.status, result.payload);
      }
    } finally {
      this.methodsPending -= 1;
    }
  }
}
