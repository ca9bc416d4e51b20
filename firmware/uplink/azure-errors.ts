import { sdkRefusal } from './azure-refusal.js';
import { UplinkError, type UplinkMessage } from './types.js';

/** The SDK's errors mapped to the uplink's: connect failures in words, twin and send failures by kind. */

/**
 * The SDK reports a twin request IoT Hub answered with an error body (e.g. 400 for a key with '.') as a
 * plain Error, and transport failures as azure-iot-common's typed errors (NotConnectedError, TimeoutError):
 * the first is the cloud refusing this request, which sending it again cannot fix.
 */
export function twinError(err: Error): UplinkError {
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
export function sendError(message: UplinkMessage, err: Error): UplinkError {
  const refusal = sdkRefusal(err);
  const what = `send of ${message.messageId} failed: ${err.name}: ${err.message}`;
  return refusal === null
    ? new UplinkError('REJECTED', what, { cause: err })
    : new UplinkError('REFUSED', what, { cause: err, refusal });
}
