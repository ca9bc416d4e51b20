/**
 * The uplink's defaults and ranges that board.json's schema table (schema-uplink.ts) shows and the uplink
 * enforces: one home both import, below both, so the schema never imports the uplink it describes.
 */

/** Ceiling of the first reconnect delay, ms: quick enough that a blip costs under a second. */
export const BACKOFF_BASE_MS_DEFAULT = 500;
/** Largest reconnect delay ceiling, ms: a minute keeps a dead broker from being hit more than once a minute. */
export const BACKOFF_MAX_MS_DEFAULT = 60_000;

/**
 * The window's hard ceiling. mqtt.js's default message-id provider hands out ids 1..65,535 and wraps; a
 * window anywhere near that would reuse an id still in flight and silently lose its completion.
 */
export const INFLIGHT_MESSAGES_HARD_MAX = 4_096;
/** The window when none is named, messages: the uplink bench drains with it at the rate raw mqtt.js reaches. */
export const INFLIGHT_MESSAGES_DEFAULT = 100;
/**
 * A priority lane's weight: how many of its messages go per one of the others'. Past 1,000 to 1 the other lanes
 * would wait out a whole backlog anyway; board.json and the pump check against this one bound.
 */
export const LANE_WEIGHT_MAX = 1_000;

/**
 * Default ceiling of the random delay between a link-up notice and the connect it starts, ms. A fleet behind
 * one cell tower gets its link back in the same second; spread over 800 ms, its peak connect rate at the
 * broker is a fraction of the herd's (`npm run bench -- fleet`), while one gateway, connecting in about
 * 100 ms, still sends its first message within a second of a hook's notice (on average in about half that).
 */
export const LINK_UP_JITTER_MS_MAX_DEFAULT = 800;

/** The pump's limits: [min, max, default, unit]. */
export const LIMIT_RANGES = {
  inflightMax: [1, INFLIGHT_MESSAGES_HARD_MAX, INFLIGHT_MESSAGES_DEFAULT, 'messages'],
  readBatchRecordsMax: [1, 10_000, 256, 'records'],
  readBatchBytesMax: [1_024, 64 * 1024 * 1024, 1024 * 1024, 'bytes'],
  ackBatchRecords: [1, 100_000, 64, 'records'],
  bytesPerSecMax: [0, 1024 * 1024 * 1024, 0, 'bytes/s'],
  connectTimeoutMs: [100, 600_000, 15_000, 'ms'],
  publishTimeoutMs: [100, 600_000, 20_000, 'ms'],
  resyncTimeoutMs: [100, 600_000, 30_000, 'ms'],
  publishAttemptsMax: [1, 1_000, 5, 'attempts'],
  // A broker that accepts and then drops every connection would otherwise be hit ~200 times a minute.
  stableConnectionMs: [0, 3_600_000, 30_000, 'ms'],
  // Short: it runs when the link is suspected dead, and every ms of it is a ms of stall.
  probeTimeoutMs: [50, 60_000, 2_000, 'ms'],
  // At most 1 s: a gateway promises its first backlog message within about a second of its link coming back.
  linkUpJitterMsMax: [0, 1_000, LINK_UP_JITTER_MS_MAX_DEFAULT, 'ms'],
  // Up to a minute: a site of thousands of gateways may want more spread at power-on than the link-up budget
  // allows, and nothing waits on the first connect. 0 by default here, for tests and benches; the runtime
  // passes board.json's uplink.bootJitterMsMax (default LINK_UP_JITTER_MS_MAX_DEFAULT).
  bootJitterMsMax: [0, 60_000, 0, 'ms'],
} as const;

// Edge mode's pool (firmware/uplink/edge/pool.ts).
/** edgeHub's MaxConnectedClients: upstream connections held at once, one per active identity. */
export const CLOUD_CONNECTIONS_MAX_DEFAULT = 100;
/**
 * edgeHub's CloudConnectionIdleTimeoutSecs (3600 in its code; some of its docs say 300): an identity without
 * traffic this long has its connection closed.
 */
export const CLOUD_CONNECTION_IDLE_SECS_DEFAULT = 3_600;
/**
 * New upstream connections per second, all identities together. IoT Hub throttles device connects per hub
 * (S1: the higher of 100/s or 12/s per unit, shared with every other gateway of the hub, and a throttled
 * identity backs off alone); half of the smallest hub's budget connects 50 children in 1 s and 100 in 2, never
 * 100 in one second. A slow (cellular) link is bounded by the connects under way (CLOUD_CONNECTS_INFLIGHT_MAX),
 * not by this. At 20/s, 50 children took 2.5 s: the bench's device mode drained two thirds of its backlog in that.
 */
export const CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT = 50;
