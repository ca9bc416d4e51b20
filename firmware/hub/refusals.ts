import type { AuthRefusal } from '../auth/authenticator.js';
import type { GateRefusal } from './gate.js';

/** Why the hub refused a connection, a packet or a publish: counted by reason in status and /metrics. */

/**
 * 'qos2': IoT Hub supports QoS 0 and 1 only and closes the connection of a device that publishes with QoS 2;
 * so does the hub (aedes would hold each one until its PUBREL). 'malformed-topic': a NUL in the topic, which
 * MQTT forbids (MQTT 3.1.1 §1.5.3). 'reserved-property': a message carried application properties with
 * reserved names (`outpost-*`, `iothub-*`, `$...`); they are left out, the message itself is stored.
 */
export type PublishRefusal =
  'acl' | 'message-size' | 'inflight' | 'rate' | 'store' | 'qos2' | 'malformed-topic' | 'reserved-property';
/** A packet whose fixed header announced more than `packetBytesMax`; the connection is closed unread. */
export type PacketRefusal = 'packet-size';
/** 'will': a CONNECT carried a last will; the connection is accepted, the will dropped (children get none). */
export type ConnectRefusal = AuthRefusal | 'clients-max' | 'will' | GateRefusal;
export type Refusal =
  ConnectRefusal | PublishRefusal | PacketRefusal | 'subscribe-acl' | 'method-acl' | 'protocol' | 'tls';

/** Printed with a refusal summary: the limit behind a reason, for the operator who must decide to raise it. */
export const REFUSAL_HINTS: Partial<Record<Refusal, string>> = {
  rate: 'published more than hub.publishBurst messages ahead of hub.publishRatePerSec, disconnected',
  inflight: 'more than hub.inflightMax publishes awaiting their PUBACK, disconnected',
  'clients-max': 'hub.clientsMax children already connected',
  'pending-max': 'hub.pendingConnectionsMax connections not yet authenticated',
  'pending-per-address': 'hub.pendingPerAddressMax connections from one address not yet authenticated',
  'connect-timeout': 'no accepted CONNECT within hub.connectTimeoutSecs',
  'connections-max': 'sockets at hub.clientsMax + hub.pendingConnectionsMax, or at the file descriptor reserve',
  'method-acl': 'child-to-child method not in hub.methods.allow',
  qos2: 'QoS 2 publish (IoT Hub supports QoS 0 and 1), disconnected',
};
