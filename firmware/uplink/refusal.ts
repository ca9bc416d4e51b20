import mqttPacket, { type IPublishPacket } from 'mqtt-packet';
import type { Refusal } from './types.js';

/**
 * How a broker's "no" to one message is read. MQTT 5 PUBACK reason codes (OASIS MQTT 5.0, 3.4.2.1) split into
 * those where the same bytes will be refused again, however often they are sent, and those that depend on
 * the moment (quota, the broker's own trouble). Codes a PUBACK may not carry — mosquitto 2.0 sends 0x95 for a
 * message over its `message_size_limit`, which mqtt-packet refuses to parse, so that PUBACK never arrives —
 * are handled by the pump as a publish that is never acknowledged.
 */
const PUBACK_REASONS: Record<number, Refusal> = {
  0x80: { reason: 'mqtt5-0x80-unspecified-error', permanent: false },
  0x83: { reason: 'mqtt5-0x83-implementation-specific-error', permanent: false },
  0x87: { reason: 'mqtt5-0x87-not-authorized', permanent: true },
  0x90: { reason: 'mqtt5-0x90-topic-name-invalid', permanent: true },
  0x91: { reason: 'mqtt5-0x91-packet-identifier-in-use', permanent: false },
  0x95: { reason: 'mqtt5-0x95-packet-too-large', permanent: true },
  0x97: { reason: 'mqtt5-0x97-quota-exceeded', permanent: false },
  0x99: { reason: 'mqtt5-0x99-payload-format-invalid', permanent: true },
};

/** The refusal a PUBACK reason code stands for; an unknown failure code is treated as one of the moment. */
export function pubackRefusal(reasonCode: number): Refusal {
  return PUBACK_REASONS[reasonCode] ?? { reason: `mqtt5-0x${reasonCode.toString(16)}`, permanent: false };
}

/** A record that can never fit the transport: refused before it is sent. */
export const TOO_LARGE: Refusal = { reason: 'too-large', permanent: true };

/**
 * A bound that is never below the encoded PUBLISH packet's size: the fixed header (5), topic and packet id,
 * every property key and value with its length prefix and identifier, and room for the four fixed ones.
 */
const PROPERTY_OVERHEAD_BYTES = 5;
/** Fixed header, topic length, packet id and the fixed properties, bytes, rounded up. */
const PUBLISH_FIXED_OVERHEAD_BYTES = 64;

/**
 * Whether a PUBLISH fits the broker's Maximum Packet Size. The cheap upper bound answers almost every call;
 * only a message near the limit is encoded to measure it exactly.
 */
export function publishFits(packet: IPublishPacket, protocolVersion: 4 | 5, packetBytesMax: number): boolean {
  const payload = typeof packet.payload === 'string' ? Buffer.byteLength(packet.payload) : packet.payload.length;
  let bound = PUBLISH_FIXED_OVERHEAD_BYTES + Buffer.byteLength(packet.topic) + payload;
  for (const [key, value] of Object.entries(packet.properties?.userProperties ?? {})) {
    bound += PROPERTY_OVERHEAD_BYTES + Buffer.byteLength(key) + Buffer.byteLength(String(value));
  }
  bound += PROPERTY_OVERHEAD_BYTES + Buffer.byteLength(packet.properties?.contentType ?? '');
  if (bound <= packetBytesMax) return true;
  return mqttPacket.generate(packet, { protocolVersion }).length <= packetBytesMax;
}
