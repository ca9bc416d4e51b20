import sdkMqttPacket from 'azure-iot-mqtt-base/node_modules/mqtt-packet/mqtt.js';

/**
 * The Azure SDK's mqtt.js 4 writes with its own nested copy of mqtt-packet, not the one firmware/mqtt-encoder.ts
 * switches, and that copy fills the same cache of 65,536 two-byte Buffers (one per packet id) on its first
 * write: 6.6 MB of heap and 11.5 MB of RSS measured for that one write, kept for the life of the process.
 * mqtt.js 4 has no option for it (5's is `writeCache`); the path is azure-iot-mqtt-base's (declared in
 * package.json for it), so an SDK update that drops the nested copy fails the build, not silently.
 */
export function useCompactSdkMqttEncoder(): void {
  sdkMqttPacket.writeToStream.cacheNumbers = false;
}
