import mqttPacket from 'mqtt-packet';

/**
 * mqtt-packet, the encoder under both mqtt.js (the uplink, twin and scope sync) and aedes (the local hub),
 * fills a cache of 65,536 two-byte Buffers (one per message id) on its first write: about 6 MB of heap that
 * stays for the life of the process, found in a heap snapshot taken during a backlog drain. Without it a
 * packet id is two bytes written from a fresh buffer; the drain's throughput is unchanged
 * (npm run bench -- uplink). One switch for the whole process: the encoder is shared.
 */
export function useCompactMqttEncoder(): void {
  mqttPacket.writeToStream.cacheNumbers = false;
}
