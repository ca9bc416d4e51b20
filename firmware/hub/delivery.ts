import type { Aedes, Client } from 'aedes';
import type { ClientState } from './client-state.js';

/**
 * Outbound delivery to connected children: publishes sent directly on the child's aedes client, and the
 * PUBACKs that answer them matched back to their promise.
 */

/** MQTT packet identifiers run 1..65,535 and wrap. */
const MESSAGE_ID_MAX = 65_535;

/**
 * Sends to a connected child. QoS 1 resolves on the child's PUBACK and rejects if it disconnects first;
 * QoS 0 resolves once written. Rejects at once when the child is not connected.
 */
export function deliver(
  states: ReadonlyMap<string, ClientState>,
  deviceId: string,
  topic: string,
  payload: Buffer,
  qos: 0 | 1,
): Promise<void> {
  const state = states.get(deviceId);
  if (state === undefined) return Promise.reject(new Error(`device "${deviceId}" is not connected`));
  return new Promise((resolve, reject) => {
    const packet = { cmd: 'publish' as const, topic, payload, qos, retain: false, dup: false };
    if (qos === 0) return state.client.publish(packet, (err) => (err ? reject(err) : resolve()));
    const client = state.client as Client & { _nextId?: number };
    client.publish(packet, (err) => {
      if (err) reject(err);
    });
    // aedes picks the packet identifier itself (it drops ours) in a setImmediate queued by publish();
    // this one runs right after it, before any PUBACK can arrive, and reads the id it took.
    setImmediate(() => {
      const next = client._nextId;
      if (states.get(deviceId) !== state) return reject(new Error(`device "${deviceId}" disconnected`));
      if (typeof next !== 'number') return reject(new Error('aedes no longer exposes _nextId; cannot match PUBACKs'));
      const messageId = next === 1 ? MESSAGE_ID_MAX : next - 1;
      state.acks.get(messageId)?.reject(new Error(`message id ${messageId} reused before its PUBACK`));
      state.acks.set(messageId, { resolve, reject });
    });
  });
}

/** Resolves `deliver`'s QoS 1 promises: hooks the broker's persistence, the one place a PUBACK is heard. */
export function hookPubacks(broker: Aedes, states: ReadonlyMap<string, ClientState>): void {
  type Persistence = { outgoingClearMessageId(c: Client, p: { messageId?: number }): Promise<unknown> };
  const persistence = (broker as unknown as { persistence: Persistence }).persistence;
  const clear = persistence.outgoingClearMessageId.bind(persistence);
  // aedes tells nobody which message a PUBACK was for when the session is clean; its persistence hears it.
  persistence.outgoingClearMessageId = (client, packet) => {
    const state = states.get(client.id);
    const ack =
      state?.client === client && packet.messageId !== undefined ? state.acks.get(packet.messageId) : undefined;
    if (ack !== undefined) {
      state!.acks.delete(packet.messageId!);
      ack.resolve();
    }
    return clear(client, packet);
  };
}
