import t from 'tap';
import sdkMqttPacket from 'azure-iot-mqtt-base/node_modules/mqtt-packet/mqtt.js';
import { createAzureTransport } from '../../../firmware/uplink/azure.js';
import { createTransport } from '../../../firmware/uplink/transports.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { until } from '../../support/until.js';

/** The Azure SDK's nested mqtt-packet keeps no 6.6 MB number cache once an azure transport exists. */
t.test("an azure transport turns off the SDK's own mqtt-packet number cache", async (t) => {
  t.equal(sdkMqttPacket.writeToStream.cacheNumbers, true, "the SDK copy's default: on");
  createAzureTransport({ connectionString: 'HostName=localhost;DeviceId=gw;SharedAccessKey=a2V5' });
  t.equal(sdkMqttPacket.writeToStream.cacheNumbers, false, 'off from the first transport on');
});

/**
 * The SDK logs `"PUBACK: " + JSON.stringify(result)` on every acknowledgement, log on or off, and the result
 * holds mqtt.js's stored copy of the packet with a copy of the body: Buffer's toJSON made that one array
 * element per body byte (firmware/uplink/azure-sdk.ts).
 * Real SDK, real sends to the emulator: no body is turned into such an array, and the bytes arrive unchanged.
 */
t.test('sending through the SDK never turns a body into JSON', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const transport = createTransport({ protocol: 'azure', connectionString: hub.addDevice('gw-json'), ca: hub.ca.cert });
  t.teardown(() => transport.close());
  await transport.connect();
  const body = Buffer.alloc(200, 'x');
  const realToJSON = Buffer.prototype.toJSON;
  let bodiesAsJson = 0;
  Buffer.prototype.toJSON = function (this: Buffer) {
    if (this.length === body.length) bodiesAsJson += 1;
    return realToJSON.call(this);
  };
  t.teardown(() => void (Buffer.prototype.toJSON = realToJSON));
  const messages = 20;
  for (let seq = 1; seq <= messages; seq += 1) {
    const message = {
      messageId: `gw-json:telemetry:${seq}`,
      lane: 'telemetry',
      seq,
      deviceId: 'gw-json',
      enqueuedAtMs: Date.now(),
      contentType: '',
      contentEncoding: '',
      properties: {},
      body,
    };
    await transport.publish(message);
  }
  Buffer.prototype.toJSON = realToJSON;
  t.equal(bodiesAsJson, 0, 'no body stringified byte by byte');
  await until('all arrived', () => hub.telemetryOf('gw-json').length === messages);
  t.ok(
    hub.telemetryOf('gw-json').every((r) => r.body.equals(body)),
    'the bodies arrive as sent',
  );
});
