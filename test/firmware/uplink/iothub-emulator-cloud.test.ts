import t from 'tap';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import mqtt from 'mqtt';
import { C2D_QUEUE_MESSAGES_MAX, IotHubEmulator, type IotHubError } from '../../support/iothub-emulator.js';
import { edgeHubKey, NO_RETRY, onBehalfOf, sasToken } from '../../support/iothub-emulator-clients.js';
import { until } from '../../support/until.js';

/**
 * The service side of the emulator against the real SDK: one twin per identity with its own $version,
 * cloud-to-device messages queued while offline and completed only by the device's PUBACK, direct methods
 * with IoT Hub's errors for an offline device and a device that does not answer.
 */

const { Client, Message, ModuleClient } = azureDevice;
type AnyClient = InstanceType<typeof Client> | InstanceType<typeof ModuleClient>;

async function open(hub: IotHubEmulator, connectionString: string, module = false): Promise<AnyClient> {
  const client = module
    ? ModuleClient.fromConnectionString(connectionString, Mqtt)
    : Client.fromConnectionString(connectionString, Mqtt);
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: hub.ca.cert });
  await client.open();
  return client;
}

async function report(client: AnyClient, patch: Record<string, unknown>): Promise<void> {
  const twin = await client.getTwin();
  await new Promise<void>((resolve, reject) =>
    twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())),
  );
}

t.test('each identity has its own twin: device, module, and a child connected on behalf of its gateway', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  hub.createEdgeDevice('gw');
  hub.createDevice('child');
  hub.addChild('gw', 'child');
  const device = await open(hub, hub.addDevice('dev'));
  t.teardown(() => device.close());
  const module = await open(hub, hub.createModule('dev', 'm1'), true);
  t.teardown(() => module.close());
  const token = sasToken(`${hub.hostName}/devices/gw/modules/$edgeHub`, edgeHubKey(hub, 'gw'));
  const child = await onBehalfOf(hub, 'child', token);
  await child.open();
  t.teardown(() => child.close());
  await report(device, { who: 'device' });
  await report(module, { who: 'module' });
  await report(module, { again: true });
  await report(child, { who: 'child' });
  t.match(hub.getTwin('dev').reported, { who: 'device', $version: 2 });
  t.match(hub.getTwin('dev', 'm1').reported, { who: 'module', again: true, $version: 3 }, 'its own $version');
  t.match(hub.getTwin('child').reported, { who: 'child', $version: 2 });
  t.notOk('again' in hub.getTwin('dev').reported, "the module's patch is not the device's");

  const seen: Record<string, unknown>[] = [];
  (await module.getTwin()).on('properties.desired', (patch: Record<string, unknown>) => seen.push(patch));
  await until('initial desired', () => seen.length === 1);
  t.equal(hub.updateDesired('dev', 'm1', { rate: 5 }), 2);
  t.equal(hub.updateDesired('dev', undefined, { other: 1 }), 2, "the device's desired has its own $version");
  await until('desired patch', () => seen.length === 2);
  t.match(seen[1], { rate: 5, $version: 2 });
  t.notOk('other' in hub.getTwin('dev', 'm1').desired);
  hub.deleteDevice('dev');
  t.same(hub.getTwin('dev').reported, { $version: 1 }, 'deleting the device deleted its twin');
});

t.test('C2D: queued while offline, delivered with its properties, completed on the PUBACK only', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const connection = hub.addDevice('dev');
  const first = hub.sendC2d('dev', 'one', { kind: 'cmd' });
  const second = hub.sendC2d('dev', 'two');
  t.equal(hub.c2dPending('dev'), 2, 'kept while the device is offline');

  // mqtt.js acknowledges a QoS 1 message only once handleMessage calls back: this device never does.
  const key = /SharedAccessKey=(.+)$/.exec(connection)![1]!;
  const silent = await mqtt.connectAsync(`mqtts://127.0.0.1:${hub.port}`, {
    clientId: 'dev',
    username: `${hub.hostName}/dev/?api-version=2021-04-12`,
    protocolVersion: 4,
    reconnectPeriod: 0,
    password: sasToken(`${hub.hostName}/devices/dev`, key),
    ca: hub.ca.cert,
    servername: 'localhost',
    clean: false,
  });
  const unacked: string[] = [];
  // It also takes no second message before it answers the first (mqtt.js reads its input in order).
  silent.handleMessage = (packet) => void unacked.push(packet.topic);
  await silent.subscribeAsync('devices/dev/messages/devicebound/#', { qos: 1 });
  await until('the first written to the silent device', () => unacked.length === 1);
  t.match(unacked[0], /^devices\/dev\/messages\/devicebound\/.*kind=cmd/);
  t.equal(hub.c2dPending('dev'), 2, 'not completed without a PUBACK');
  silent.end(true);
  await until('the silent device gone', () => !hub.isConnected('dev'));

  const device = (await open(hub, connection)) as InstanceType<typeof Client>;
  t.teardown(() => device.close());
  const bodies: string[] = [];
  device.on('message', (message: InstanceType<typeof Message>) => {
    bodies.push(message.getBytes().toString());
    void device.complete(message);
  });
  await until('redelivered and acknowledged', () => hub.c2dPending('dev') === 0);
  t.same(bodies, ['one', 'two'], 'in order, on the next connection');
  t.same(hub.c2dCompleted('dev'), [first, second]);
});

t.test(`C2D: a device's queue holds ${C2D_QUEUE_MESSAGES_MAX} messages; one more is refused with 403004`, async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  hub.addDevice('dev');
  for (let i = 0; i < C2D_QUEUE_MESSAGES_MAX; i += 1) hub.sendC2d('dev', `m${i}`);
  const over = (() => {
    try {
      hub.sendC2d('dev', 'over');
    } catch (error) {
      return error as IotHubError;
    }
  })();
  t.equal(over?.errorCode, 403004, 'DeviceMaximumQueueDepthExceeded');
  t.equal(over?.statusCode, 403);
  t.throws(() => hub.sendC2d('nobody', 'x'), /404001/);
});

t.test('direct methods: answered, 404103 while offline or not listening, 504101 when never answered', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const connection = hub.addDevice('dev');
  const offline = await hub.invokeDeviceMethod('dev', undefined, { methodName: 'reboot' }).catch((e: IotHubError) => e);
  t.match(offline, { errorCode: 404103, errorName: 'DeviceNotOnline', statusCode: 404 }, 'offline');
  const device = (await open(hub, connection)) as InstanceType<typeof Client>;
  t.teardown(() => device.close());
  const deaf = await hub.invokeDeviceMethod('dev', undefined, { methodName: 'reboot' }).catch((e: IotHubError) => e);
  t.match(deaf, { errorCode: 404103 }, 'connected but not subscribed to methods');
  device.onDeviceMethod('reboot', (request, response) => void response.send(200, { got: request.payload }));
  device.onDeviceMethod('hang', () => {});
  await until('method subscription', () => hub.isSubscribed('dev', '$iothub/methods/POST/#'));
  t.same(await hub.invokeDeviceMethod('dev', undefined, { methodName: 'reboot', payload: { inSecs: 1 } }), {
    status: 200,
    payload: { got: { inSecs: 1 } },
  });
  const hung = await hub
    .invokeDeviceMethod('dev', undefined, { methodName: 'hang', responseTimeoutInSeconds: 0.2 })
    .catch((e: IotHubError) => e);
  t.match(hung, { errorCode: 504101, errorName: 'GatewayTimeout', statusCode: 504 }, 'the device never answers');
  const long = await hub
    .invokeDeviceMethod('dev', undefined, { methodName: 'x', responseTimeoutInSeconds: 301 })
    .catch((e: IotHubError) => e);
  t.match(long, { errorCode: 400004 }, 'over the 300 s IoT Hub allows');

  const module = (await open(hub, hub.createModule('dev', 'm'), true)) as InstanceType<typeof ModuleClient>;
  t.teardown(() => module.close());
  module.onMethod('ping', (_request, response) => void response!.send(201, 'pong'));
  await until('module method subscription', () => hub.isSubscribed('dev/m', '$iothub/methods/POST/#'));
  t.same(await hub.invokeDeviceMethod('dev', 'm', { methodName: 'ping' }), { status: 201, payload: 'pong' });
});
