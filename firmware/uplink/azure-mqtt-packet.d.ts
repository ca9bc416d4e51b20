/**
 * The Azure SDK's own copy of mqtt-packet (6.x, nested under azure-iot-mqtt-base for its mqtt.js 4): the
 * part outpost uses (firmware/uplink/azure-encoder.ts). The path has no types of its own.
 */
declare module 'azure-iot-mqtt-base/node_modules/mqtt-packet/mqtt.js' {
  const mqttPacket: { writeToStream: { cacheNumbers: boolean } };
  export default mqttPacket;
}
