import t from 'tap';
import sdkMqttPacket from 'azure-iot-mqtt-base/node_modules/mqtt-packet/mqtt.js';
import { createAzureTransport } from '../../../firmware/uplink/azure.js';

/** The Azure SDK's nested mqtt-packet keeps no 6.6 MB number cache once an azure transport exists. */
t.test("an azure transport turns off the SDK's own mqtt-packet number cache", async (t) => {
  t.equal(sdkMqttPacket.writeToStream.cacheNumbers, true, "the SDK copy's default: on");
  createAzureTransport({ connectionString: 'HostName=localhost;DeviceId=gw;SharedAccessKey=a2V5' });
  t.equal(sdkMqttPacket.writeToStream.cacheNumbers, false, 'off from the first transport on');
});
