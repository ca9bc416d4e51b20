import t from 'tap';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { D2C_MESSAGE_BYTES_MAX, IotHubEmulator } from '../../support/iothub-emulator.js';
import { until } from '../../support/until.js';

/**
 * The emulator is only worth having if the real SDK accepts it: these drive it with azure-iot-device and
 * azure-iot-device-mqtt exactly as a device would, with `HostName=localhost:<port>` and the test CA.
 */

// azure-iot-device is CommonJS and re-exports Message through a getter Node's ESM loader cannot see.
const { Client, Message } = azureDevice;
const NO_RETRY = { shouldRetry: () => false, nextRetryTimeout: () => -1 };

t.test('the real device SDK talks to the emulator', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const client = Client.fromConnectionString(hub.addDevice('dev-1'), Mqtt);
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: hub.ca.cert });
  await client.open();
  t.teardown(() => client.close());
  t.ok(hub.isConnected('dev-1'), 'connected over mqtts to localhost:<port>, SAS accepted');

  for (let i = 0; i < 5; i += 1) {
    const message = new Message(JSON.stringify({ i }));
    message.messageId = `m-${i}`;
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('child', 'sensor-7');
    await client.sendEvent(message);
  }
  t.same(
    hub.telemetry.map((r) => JSON.parse(r.body.toString()).i),
    [0, 1, 2, 3, 4],
    'telemetry in order',
  );
  t.match(hub.telemetry[0], {
    deviceId: 'dev-1',
    properties: { '$.mid': 'm-0', '$.ct': 'application/json', '$.ce': 'utf-8', child: 'sensor-7' },
  });

  const twin = await client.getTwin();
  t.equal(twin.properties.desired.$version, 1);
  await new Promise<void>((resolve, reject) =>
    twin.properties.reported.update({ firmware: '0.1.0', nested: { a: 1 } }, (err?: Error) =>
      err ? reject(err) : resolve(),
    ),
  );
  t.match(hub.twin('dev-1').reported, { firmware: '0.1.0', nested: { a: 1 }, $version: 2 }, 'reported PATCH applied');

  const desired: Record<string, unknown>[] = [];
  twin.on('properties.desired', (patch: Record<string, unknown>) => desired.push(patch));
  // The SDK emits the full desired document first, then each patch.
  await until('initial desired', () => desired.length === 1);
  hub.patchDesired('dev-1', { ttlSecs: 3600 });
  await until('desired patch', () => desired.length === 2);
  t.match(desired[1], { ttlSecs: 3600, $version: 2 });

  client.onDeviceMethod('reboot', (request, response) => {
    void response.send(200, { delayed: request.payload });
  });
  await until('method subscription', () => hub.isSubscribed('dev-1', '$iothub/methods/POST/#'));
  const result = await hub.invokeMethod('dev-1', 'reboot', { inSecs: 5 });
  t.same(result, { status: 200, payload: { delayed: { inSecs: 5 } } });
});

t.test('a wrong key is refused', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const good = hub.addDevice('dev-2');
  const bad = good.replace(/SharedAccessKey=.*/, `SharedAccessKey=${Buffer.alloc(32, 7).toString('base64')}`);
  const client = Client.fromConnectionString(bad, Mqtt);
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: hub.ca.cert });
  await t.rejects(client.open());
  t.notOk(hub.isConnected('dev-2'));
});

t.test('an X.509 device authenticates with its certificate', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const { cert, key } = await hub.ca.issue('dev-x');
  const client = Client.fromConnectionString(hub.addX509Device('dev-x'), Mqtt);
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: hub.ca.cert, cert, key });
  await client.open();
  t.teardown(() => client.close());
  await client.sendEvent(new Message('x'));
  t.equal(hub.telemetry[0]?.deviceId, 'dev-x');
});

t.test(
  'a message over 256 KiB with its properties closes the connection, unacknowledged, as IoT Hub does',
  async (t) => {
    const hub = await IotHubEmulator.start();
    t.teardown(() => hub.stop());
    const client = Client.fromConnectionString(hub.addDevice('dev-big'), Mqtt);
    client.setRetryPolicy(NO_RETRY);
    await client.setOptions({ ca: hub.ca.cert });
    await client.open();
    t.teardown(() => client.close().catch(() => {}));
    const disconnected = new Promise<void>((resolve) => client.once('disconnect', () => resolve()));
    // The body alone passes the SDK's own check (it counts the body only); the property takes it over.
    const body = Buffer.alloc(D2C_MESSAGE_BYTES_MAX - 1_000, 0x61);
    const fits = new Message(body);
    fits.properties.add('pad', 'p'.repeat(1_000 - 'pad'.length));
    await client.sendEvent(fits);
    t.equal(hub.telemetry.length, 1, 'exactly at the limit with its properties: accepted');
    const over = new Message(body);
    over.properties.add('pad', 'p'.repeat(1_000 - 'pad'.length + 1));
    await t.rejects(client.sendEvent(over), 'the send fails');
    await disconnected;
    t.notOk(hub.isConnected('dev-big'), 'the connection was closed');
    t.equal(hub.telemetry.length, 1, 'the oversize message was not taken');
    t.equal(hub.operations('dev-big', 'telemetry-too-large'), 1);
  },
);
