import t from 'tap';
import { X509Certificate } from 'node:crypto';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import mqtt from 'mqtt';
import { EDGE_HUB_MODULE_ID, IotHubEmulator } from '../../support/iothub-emulator.js';
import { edgeHubKey, NO_RETRY, onBehalfOf, sasToken } from '../../support/iothub-emulator-clients.js';

/**
 * IoT Hub's CONNECT rules in the emulator, driven by the real SDK (and mqtt.js where a username must be
 * written by hand): identities, on-behalf-of tokens for a transparent gateway's children, the auth chain,
 * registry changes while connected, the connect throttle.
 */

const { Client, Message } = azureDevice;

t.test('a registered child connects on behalf of its gateway; telemetry is stamped with the child', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  hub.createEdgeDevice('gw');
  hub.createDevice('child-1');
  hub.addChild('gw', 'child-1');
  const token = sasToken(`${hub.hostName}/devices/gw/modules/$edgeHub`, edgeHubKey(hub, 'gw'));
  const child = await onBehalfOf(hub, 'child-1', token);
  await child.open();
  t.teardown(() => child.close());
  const forged = new Message('{"t":1}');
  forged.properties.add('iothub-connection-device-id', 'someone-else');
  await child.sendEvent(forged);
  const [record] = hub.telemetryOf('child-1');
  t.equal(record?.deviceId, 'child-1', 'the record is the child');
  t.equal(record?.systemProperties['iothub-connection-device-id'], 'child-1', 'stamped as the authenticated child');
  t.equal(record?.authMethod, 'on-behalf-of');
  t.equal(record?.actorDeviceId, 'gw');
  t.match(JSON.parse(record!.systemProperties['iothub-connection-auth-method']!), { scope: 'device', type: 'sas' });

  const module = await onBehalfOf(hub, 'gw', token, 'filter');
  await t.rejects(module.open(), 'a module the registry does not have is refused');
  hub.createModule('gw', 'filter');
  const registered = await onBehalfOf(hub, 'gw', token, 'filter');
  await registered.open();
  t.teardown(() => registered.close());
  await registered.sendEvent(new Message('m'));
  t.equal(hub.telemetryOf('gw', 'filter')[0]?.systemProperties['iothub-connection-module-id'], 'filter');
});

t.test('on behalf of: a device outside the scope, a wrong key or a plain device gateway are refused', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const { device } = hub.createEdgeDevice('gw');
  hub.createEdgeDevice('gw-2');
  hub.createDevice('stranger');
  hub.createDevice('plain-gw');
  hub.createModule('plain-gw', EDGE_HUB_MODULE_ID);
  hub.createDevice('child-2');
  hub.registry.addChild('gw-2', 'child-2');
  const gwKey = /SharedAccessKey=(.+)$/.exec(device)![1]!;
  const edgeResource = `${hub.hostName}/devices/gw/modules/$edgeHub`;
  const attempts = [
    ['stranger', sasToken(edgeResource, edgeHubKey(hub, 'gw')), 'not a child'],
    ['child-2', sasToken(edgeResource, edgeHubKey(hub, 'gw')), 'child of another gateway'],
    ['child-2', sasToken(edgeResource, gwKey), "signed with the gateway's device key"],
    [
      'stranger',
      sasToken(`${hub.hostName}/devices/plain-gw/modules/$edgeHub`, edgeHubKey(hub, 'plain-gw')),
      'not IoT Edge',
    ],
    ['stranger', sasToken(edgeResource, edgeHubKey(hub, 'gw'), Math.floor(Date.now() / 1000) - 1), 'expired'],
  ] as const;
  for (const [deviceId, token, why] of attempts) {
    const client = await onBehalfOf(hub, deviceId, token);
    await t.rejects(client.open(), `refused: ${why}`);
    t.notOk(hub.isConnected(deviceId));
  }
  t.same(
    hub.refusals.map((r) => r.returnCode),
    [5, 5, 5, 5, 5],
    'every refusal is CONNACK 5, not authorized',
  );
});

t.test("the username's auth-chain is accepted when it leads from the identity to the signing gateway", async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  hub.createEdgeDevice('gw');
  hub.createDevice('leaf');
  hub.addChild('gw', 'leaf');
  const password = sasToken(`${hub.hostName}/devices/gw/modules/$edgeHub`, edgeHubKey(hub, 'gw'));
  const connect = (chain: string) =>
    mqtt.connectAsync(`mqtts://127.0.0.1:${hub.port}`, {
      clientId: 'leaf',
      protocolVersion: 4,
      reconnectPeriod: 0,
      ca: hub.ca.cert,
      servername: 'localhost',
      password,
      username:
        `${hub.hostName}/leaf/?api-version=2021-04-12&DeviceClientType=test` +
        `&auth-chain=${encodeURIComponent(chain)}`,
    });
  const good = await connect('leaf;gw');
  t.ok(hub.isConnected('leaf'), 'leaf;gw accepted');
  await good.endAsync();
  await t.rejects(connect('leaf;elsewhere'), 'a chain ending at another gateway is refused');
  t.match(hub.refusals.at(-1), { clientId: 'leaf', returnCode: 5, reason: /auth-chain/ });
});

t.test('identities disabled, deleted or taken out of scope are disconnected and refused', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  hub.createEdgeDevice('gw');
  hub.createDevice('child');
  hub.addChild('gw', 'child');
  const own = Client.fromConnectionString(hub.addDevice('solo'), Mqtt);
  own.setRetryPolicy(NO_RETRY);
  await own.setOptions({ ca: hub.ca.cert });
  const token = sasToken(`${hub.hostName}/devices/gw/modules/$edgeHub`, edgeHubKey(hub, 'gw'));
  const cycle = async (what: string, change: () => void, restore?: () => void) => {
    const client = await onBehalfOf(hub, 'child', token);
    await client.open();
    const gone = new Promise<void>((resolve) => client.once('disconnect', () => resolve()));
    change();
    await gone;
    t.notOk(hub.isConnected('child'), `${what}: disconnected at once`);
    const again = await onBehalfOf(hub, 'child', token);
    await t.rejects(again.open(), `${what}: refused after`);
    restore?.();
  };
  await cycle(
    'disabled',
    () => hub.disableDevice('child'),
    () => hub.enableDevice('child'),
  );
  await cycle(
    'gateway disabled',
    () => hub.disableDevice('gw'),
    () => hub.enableDevice('gw'),
  );
  await cycle(
    'child removed from the gateway',
    () => hub.removeChild('gw', 'child'),
    () => hub.addChild('gw', 'child'),
  );
  await cycle('deleted', () => hub.deleteDevice('child'));

  await own.open();
  const gone = new Promise<void>((resolve) => own.once('disconnect', () => resolve()));
  hub.deleteDevice('solo');
  await gone;
  t.notOk(hub.isConnected('solo'), 'a device connected with its own key is disconnected when deleted');
});

t.test('CONNECT must name the identity: client id, username and token resource agree', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const a = hub.addDevice('dev-a');
  hub.addDevice('dev-b');
  const keyA = /SharedAccessKey=(.+)$/.exec(a)![1]!;
  const url = `mqtts://127.0.0.1:${hub.port}`;
  const connect = (clientId: string, user: string, resource: string) =>
    mqtt.connectAsync(url, {
      clientId,
      username: `${hub.hostName}/${user}/?api-version=2021-04-12`,
      password: sasToken(resource, keyA),
      protocolVersion: 4,
      reconnectPeriod: 0,
      ca: hub.ca.cert,
      servername: 'localhost',
    });
  const ok = await connect('dev-a', 'dev-a', `${hub.hostName}/devices/dev-a`);
  await ok.endAsync();
  await t.rejects(connect('dev-b', 'dev-b', `${hub.hostName}/devices/dev-a`), "dev-a's token for dev-b");
  await t.rejects(connect('dev-b', 'dev-a', `${hub.hostName}/devices/dev-a`), 'username of another client id');
  await t.rejects(connect('dev-a', 'dev-a', `elsewhere.azure-devices.net/devices/dev-a`), 'token for another hub');
  t.same(
    hub.refusals.map((r) => r.returnCode),
    [5, 4, 5],
  );
});

t.test('a self-signed X.509 device authenticates by its registered thumbprint', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const { cert, key } = await hub.ca.issue('any-cn');
  const thumbprint = new X509Certificate(cert).fingerprint256.replaceAll(':', '');
  hub.createDevice('dev-t', { type: 'selfSigned', primaryThumbprint: thumbprint });
  hub.createDevice('dev-u', { type: 'selfSigned', primaryThumbprint: 'AB'.repeat(32) });
  for (const [deviceId, accepted] of [
    ['dev-t', true],
    ['dev-u', false],
  ] as const) {
    const client = Client.fromConnectionString(`HostName=${hub.hostName};DeviceId=${deviceId};x509=true`, Mqtt);
    client.setRetryPolicy(NO_RETRY);
    await client.setOptions({ ca: hub.ca.cert, cert, key });
    if (accepted) {
      await client.open();
      await client.close();
    } else await t.rejects(client.open(), 'a certificate with another thumbprint is refused');
  }
  t.equal(hub.operations('dev-t', 'connect'), 1);
});

t.test('connects over the throttle are refused as server unavailable; under it they are accepted', async (t) => {
  // A limit of 0 refuses the first connect: deterministic however slow the machine is.
  const hub = await IotHubEmulator.start({ connectsPerSecMax: 0 });
  t.teardown(() => hub.stop());
  const connection = hub.addDevice('dev-r');
  const open = async () => {
    const client = Client.fromConnectionString(connection, Mqtt);
    client.setRetryPolicy(NO_RETRY);
    await client.setOptions({ ca: hub.ca.cert });
    await client.open();
    return client;
  };
  await t.rejects(open(), 'over the throttle: refused');
  t.equal(hub.operations('dev-r', 'throttled'), 1);
  t.match(hub.refusals.at(-1), { clientId: 'dev-r', returnCode: 3 }, 'CONNACK 3, server unavailable: transient');
  hub.setConnectThrottle(100);
  const client = await open();
  t.teardown(() => client.close());
  t.ok(hub.isConnected('dev-r'), 'under the throttle: accepted');
});

t.test('a connection ends when the token it was made with expires, as IoT Hub ends it', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const key = /SharedAccessKey=(.+)$/.exec(hub.addDevice('dev-e'))![1]!;
  // A token 3 s from expiry; tried again (bounded) should a loaded machine take that long to connect.
  let client: mqtt.MqttClient | undefined;
  for (let attempt = 0; attempt < 5 && client === undefined; attempt += 1) {
    const expirySecs = Math.floor(Date.now() / 1000) + 3;
    client = await mqtt
      .connectAsync(`mqtts://127.0.0.1:${hub.port}`, {
        clientId: 'dev-e',
        username: `${hub.hostName}/dev-e/?api-version=2021-04-12`,
        protocolVersion: 4,
        reconnectPeriod: 0,
        ca: hub.ca.cert,
        servername: 'localhost',
        password: sasToken(`${hub.hostName}/devices/dev-e`, key, expirySecs),
      })
      .catch(() => undefined);
  }
  t.ok(client, 'connected with the short-lived token');
  const closed = new Promise<void>((resolve) => client!.once('close', () => resolve()));
  t.ok(hub.isConnected('dev-e'));
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('still connected 15 s after the token expired')), 15_000);
  });
  await Promise.race([closed, late]).finally(() => clearTimeout(timer));
  t.notOk(hub.isConnected('dev-e'), 'closed by the hub at expiry');
});
