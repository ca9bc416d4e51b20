/** Edge mode's pool limits; the defaults the board.json schema shows live in firmware/config/uplink-limits.ts. */

export {
  CLOUD_CONNECTIONS_MAX_DEFAULT,
  CLOUD_CONNECTION_IDLE_SECS_DEFAULT,
  CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT,
} from '../../config/uplink-limits.js';

/**
 * Upstream connects under way at once, all identities together. The rate (cloudConnectsPerSecMax) bounds them
 * on a fast link; this bounds them on a slow one: over cellular a TLS and MQTT connect takes several round
 * trips (a second or more), and 50 a second would keep dozens of handshakes in flight, starving the traffic
 * already flowing. Each finished connect starts the next, so a slow link connects slower by itself.
 */
export const CLOUD_CONNECTS_INFLIGHT_MAX = 8;

/**
 * Refusals of one identity's CONNECT in a row before the pool takes it as permanent (deleted, disabled, not a
 * child): one refusal may be IoT Hub catching up with a registry change that is being undone.
 */
export const IDENTITY_REFUSALS_MAX = 3;
/** A refused identity is tried again after this long, in case it was put back in the registry, ms. */
export const REFUSED_RECHECK_MS = 600_000;

/** Why a connect was refused, as the SDK words CONNACK 2, 4 and 5 (IoT Hub's answer to unknown identities). */
const IDENTITY_REFUSAL = /not authori[sz]ed|bad username or password|identifier rejected|unauthorized/i;

/**
 * Whether a failed connect is IoT Hub refusing the identity. The message, not the SDK's error class: it calls
 * every failed first connect an UnauthorizedError, a reset too, and the azure transport keeps the "Not
 * authorized" wording only for a CONNACK refusal.
 */
export function isIdentityRefusal(err: Error): boolean {
  return IDENTITY_REFUSAL.test(err.message);
}

/**
 * Publishes in flight on one identity's connection, messages. IoT Hub acknowledges one device's messages in
 * order and throttles per device; 16 keeps a child's connection busy over a 300 ms round trip without one
 * child taking the whole window from the others.
 */
export const IDENTITY_INFLIGHT_MAX = 16;
/**
 * Messages an identity is sent at a time, at least (fewer only when its queue or the window is shorter).
 * Each identity's connection is a socket (and TLS session) of its own, and messages written to it in one
 * tick leave in one write; spread over 50 children one free slot at a time, every message cost a write and
 * a TLS record of its own (the bench profiled 3x device mode's writev time per message). Half the
 * identity's window, so it keeps messages in flight while the next batch waits for room.
 */
export const IDENTITY_SEND_BATCH_MESSAGES = IDENTITY_INFLIGHT_MAX / 2;
/**
 * An identity holding the upstream cursor while its connection is still opening (pacing, a full pool) is
 * parked after this long, ms; one in backoff at once. Longer than 100 children's paced connects take.
 */
export const PARK_PENDING_MS = 10_000;

/**
 * Cloud-to-device messages of one identity held at the gateway between IoT Hub's delivery and the child's
 * PUBACK, messages: IoT Hub's own per-device queue depth (50), so a child never has more than IoT Hub
 * could have queued for it. One over it is left un-acknowledged: IoT Hub sends it again on the next connection.
 */
export const C2D_PENDING_PER_IDENTITY_MAX = 50;
/**
 * The same across all identities, messages: up to 64 KiB each, 500 bound the memory to 32 MiB on a Pi; ten
 * children with a full queue each, while each of a hundred connected children can still have a few.
 */
export const C2D_PENDING_MAX = 500;
/**
 * Direct method calls from IoT Hub awaiting a child's answer, all identities: the local hub's own table holds
 * 256 (firmware/hub/methods.ts PENDING_METHODS_MAX); past it IoT Hub's caller gets a 429 answer at once.
 */
export const CLOUD_METHOD_CALLS_PENDING_MAX = 256;
/**
 * How long the gateway waits for a child's answer to IoT Hub's call, ms: IoT Hub's own maximum response timeout
 * (300 s). IoT Hub applies the caller's (shorter) timeout itself and answers 504101 GatewayTimeout then; the
 * gateway only stops holding the call.
 */
export const CLOUD_METHOD_WAIT_MS = 300_000;
