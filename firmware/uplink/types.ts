/**
 * The uplink contract. A transport is one connection to one cloud endpoint; the pump owns everything around
 * it (reconnect, backoff, watchdog, ordering). Rules every implementation keeps:
 *
 * - `connect()` makes ONE attempt. It never retries on its own and never reconnects after a loss: two retry
 *   loops fighting over one link is how edgeHub ends up stalled after a flaky network.
 * - `publish()` resolves only on the broker's acknowledgement (PUBACK), and rejects — never hangs — when the
 *   connection drops first or `destroy()` is called. Publishes are sent in call order. A broker that refuses
 *   this one message (an MQTT 5 reason code, a message over a size limit known before sending) is a
 *   `REFUSED` error with its `refusal`: the connection stays up and nothing is reported to `onDisconnect`.
 * - `probe()` asks the peer for a round trip on the current connection (MQTT PINGREQ) and says whether it
 *   answered in time; it never throws and never tears the connection down itself.
 * - Every connection loss after `connect()` resolved is reported once through `onDisconnect`, with the cause.
 * - `destroy()` tears the connection down at once without waiting on the peer (the watchdog calls it on a
 *   connection that hangs); `close()` says goodbye first. Both may be called at any time, more than once.
 */

export interface UplinkMessage {
  /** Stable across retries and restarts: `<gatewayId>:<lane>:<seq>`, so the far side can drop duplicates. */
  messageId: string;
  lane: string;
  seq: number;
  /** The device the message is from: the gateway itself or one of its child devices. */
  deviceId: string;
  /** When the gateway stored it, ms since the epoch by the gateway's wall clock then. */
  enqueuedAtMs: number;
  /** MIME type of the body, e.g. `application/json`; empty when unknown. */
  contentType: string;
  /** Encoding of the body, e.g. `utf-8`; empty when unknown. */
  contentEncoding: string;
  /** Application properties, as the producer set them. */
  properties: Record<string, string>;
  body: Buffer;
}

/**
 * A desired-properties change is read after this quiet period, ms. The SDK also reports the whole desired
 * section when it fetches the twin at connect; reading then would race the resync hook's own read, and
 * concurrent twin GETs on one SDK client can leave one never answered. Every TwinChannel reader waits it.
 */
export const DESIRED_SETTLE_MS = 500;

/** Twin access where the cloud has twins (IoT Hub); the twin and settings hooks use it. */
export interface TwinChannel {
  /** The full twin, `{ desired, reported }`, each with its `$version`. */
  get(): Promise<{ desired: Record<string, unknown>; reported: Record<string, unknown> }>;
  /** Sends a reported-properties patch; resolves when the cloud accepted it. */
  patchReported(patch: Record<string, unknown>): Promise<void>;
  /** Desired-property patches pushed by the cloud while connected; returns an unsubscribe. */
  onDesired(listener: (patch: Record<string, unknown>) => void): () => void;
}

/**
 * A retained configuration topic where the cloud is a plain MQTT broker (no twins). The broker sends a
 * topic's retained message on every SUBSCRIBE, so subscribing at each connect doubles as a "GET" of the
 * current document; later publishes arrive live.
 */
export interface ConfigTopicChannel {
  /** The topic, placeholders filled in, for status and logs. */
  readonly topic: string;
  /** Subscribes (QoS 1) on the current connection; resolves on SUBACK, rejects when not connected. */
  subscribe(): Promise<void>;
  /** Every message on the topic, retained or live (an empty payload clears it); returns an unsubscribe. */
  onMessage(listener: (payload: Buffer) => void): () => void;
}

export interface MethodResponse {
  status: number;
  payload: unknown;
}

/** Direct methods (cloud → gateway calls) where the cloud has them. */
export type MethodHandler = (payload: unknown) => Promise<MethodResponse>;

/** What the server said about the current connection (MQTT 5 CONNACK); null where it set no limit. */
export interface ServerLimits {
  /** Receive Maximum: QoS 1 publishes the server takes unacknowledged at once, messages. */
  receiveMaximum: number | null;
  /** Maximum Packet Size: the largest packet the server accepts, bytes. */
  packetBytesMax: number | null;
}

export interface UplinkTransport {
  /** `mqtt` or `azure`, for status and logs. */
  readonly protocol: string;
  connect(): Promise<void>;
  publish(message: UplinkMessage): Promise<void>;
  /** True when the peer answered a round trip within `timeoutMs`; false when not, or when not connected. */
  probe(timeoutMs: number): Promise<boolean>;
  /** The server's limits for the connection `connect()` made; absent where the protocol has none. */
  serverLimits?(): ServerLimits;
  onDisconnect(listener: (cause: Error) => void): () => void;
  destroy(): Promise<void>;
  close(): Promise<void>;
  /** Present when the cloud keeps twins for this connection (azure). */
  readonly twin?: TwinChannel;
  /** Present when the cloud pushes configuration on a retained topic (mqtt). */
  readonly configTopic?: ConfigTopicChannel;
  /** Present when the cloud can call methods on this connection (azure); handlers survive reconnects. */
  onMethod?(name: string, handler: MethodHandler): void;
}

/** IO: a local file (saved settings) could not be written. REFUSED: the broker refused one message. */
export type UplinkErrorCode =
  'CONNECT' | 'TIMEOUT' | 'DISCONNECTED' | 'REJECTED' | 'REFUSED' | 'CLOSED' | 'INVALID' | 'IO';

/** Why a broker refused a message, and whether sending it again could ever succeed. */
export interface Refusal {
  /** Short and stable, for counters and the dead-letter record: `mqtt5-0x87-not-authorized`, `too-large`. */
  reason: string;
  /** True when the same bytes will be refused again (not authorized, too large); false for quota and the like. */
  permanent: boolean;
}

/** What the outside world sees of an uplink failure; `cause` keeps the library's own error. */
export class UplinkError extends Error {
  readonly refusal: Refusal | null;

  constructor(
    readonly code: UplinkErrorCode,
    message: string,
    options?: { cause?: unknown; refusal?: Refusal },
  ) {
    super(message, options);
    this.name = 'UplinkError';
    this.refusal = options?.refusal ?? null;
  }
}
