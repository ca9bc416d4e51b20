import t from 'tap';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import mqtt, { type MqttClient } from 'mqtt';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { makeSasToken } from '../../../firmware/auth/sas.js';
import { startHub } from '../../../firmware/hub/index.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { RingLog } from '../../../firmware/store/log.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import {
  HUB_HOST,
  hubCerts,
  mqttChild,
  publishRefused,
  newKey,
  sasPassword,
  scopeDocument,
  until,
} from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

const { ModuleClient, Message } = azureDevice;

/** Module identities (IoT Edge's dialect): auth, ACL, telemetry, inputs from routes, module twins and methods. */

const keyA = newKey();
const keyFilter = newKey();
const keyAnalyzer = newKey();
const routes = {
  up: 'FROM /messages/* INTO $upstream',
  toAnalyzer: 'FROM /messages/devices/child-a/* INTO BrokeredEndpoint("/modules/analyzer/inputs/in1")',
  alerts:
    'FROM /messages/devices/child-a/modules/filter/outputs/alerts ' +
    'INTO BrokeredEndpoint("/modules/analyzer/inputs/alerts")',
  fromFilter:
    "FROM /messages/devices/child-a/modules/filter/* WHERE $connectionModuleId = 'filter' AND $deviceId = 'child-a' " +
    'INTO BrokeredEndpoint("/modules/analyzer/inputs/filtered")',
};

const scope = (version: number) => ({
  ...scopeDocument('gw-1', version, [{ deviceId: 'child-a', key: keyA }]),
  devices: [
    {
      deviceId: 'child-a',
      version: 1,
      auth: { type: 'sas', primaryKey: keyA },
      modules: [{ moduleId: 'filter', auth: { type: 'sas', primaryKey: keyFilter } }],
    },
  ],
  modules: { analyzer: { auth: { type: 'sas', primaryKey: keyAnalyzer } } },
});

function moduleChild(
  port: number,
  deviceId: string,
  moduleId: string,
  key: string,
  resource = `${HUB_HOST}/devices/${deviceId}/modules/${moduleId}`,
): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
    clientId: `${deviceId}/${moduleId}`,
    username: `${HUB_HOST}/${deviceId}/${moduleId}/?api-version=2021-04-12`,
    password: makeSasToken(resource, key, Math.floor(Date.now() / 1000) + 3600),
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 5_000,
  });
}

async function setup(t: typeof import('tap').Test.prototype, tlsCerts?: { certPath: string; keyPath: string }) {
  const dir = tempDir(t, 'outpost-hub-modules-');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  await publishScope({ url: broker.url }, 'gw-1', scope(1));
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const tls = tlsCerts === undefined ? false : { port: 0, certPath: tlsCerts.certPath, keyPath: tlsCerts.keyPath };
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls, methods: { allow: { 'child-a': ['child-a/filter/ping'] } } }, routes },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
  });
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  return { hub, log, port: hub.status().ports.tcp!, dir };
}

function responses(client: MqttClient): Map<string, { topic: string; body: string }> {
  const seen = new Map<string, { topic: string; body: string }>();
  client.on('message', (topic, payload) => {
    const rid = /\$rid=([^&]+)/.exec(topic)?.[1];
    if (rid !== undefined) seen.set(rid, { topic, body: payload.toString() });
  });
  return seen;
}

t.test('module identities: SAS for the module resource, and a module touches only its own topics', async (t) => {
  const { hub, port } = await setup(t);
  await t.rejects(
    moduleChild(port, 'child-a', 'filter', keyFilter, `${HUB_HOST}/devices/child-a`),
    /Not authorized/,
    "a token for the device's resource does not open the module",
  );
  await t.rejects(
    moduleChild(port, 'child-a', 'filter', keyA),
    /Not authorized/,
    "the device's key does not sign for its module",
  );
  await t.rejects(moduleChild(port, 'child-a', 'nope', keyFilter), /Not authorized/, 'an unknown module is refused');
  t.match(hub.status().refusals, { audience: 1, signature: 1, 'unknown-device': 1 });

  const m = await moduleChild(port, 'child-a', 'filter', keyFilter);
  t.teardown(() => m.endAsync(true));
  t.same(
    (await m.subscribeAsync('devices/child-a/modules/filter/inputs/#', { qos: 1 })).map((g) => g.qos),
    [1],
    'its own inputs are granted',
  );
  await t.rejects(
    m.subscribeAsync('devices/child-a/messages/devicebound/#', { qos: 1 }),
    /Subscribe error/,
    "its device's cloud-to-device topic is not",
  );
  await t.rejects(
    m.subscribeAsync('devices/gw-1/modules/analyzer/inputs/#', { qos: 1 }),
    /Subscribe error/,
    "another module's inputs are not",
  );
  t.equal(hub.status().refusals['subscribe-acl'], 2);
  await publishRefused(m, 'devices/child-a/messages/events/', 'spoof');
  t.equal(hub.status().refusals.acl, 1, "publishing as its device closes the module's connection");

  const device = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
  t.teardown(() => device.endAsync(true));
  const spoofed = new Promise<void>((resolve) => device.once('close', () => resolve()));
  device.publish('devices/child-a/modules/filter/messages/events/', 'spoof', { qos: 1 });
  await spoofed;
  t.equal(hub.status().refusals.acl, 2, 'a device may not publish as its module either');
});

t.test('module telemetry, inputs from routes, module twin and module methods (mqtt.js)', async (t) => {
  const { hub, log, port } = await setup(t);
  const upstream = await log.lane(UPSTREAM_LANE);
  const filter = await moduleChild(port, 'child-a', 'filter', keyFilter);
  t.teardown(() => filter.endAsync(true));
  await filter.publishAsync('devices/child-a/modules/filter/messages/events/kind=filtered', '{"v":1}', { qos: 1 });
  const [record] = await upstream.read(1);
  t.same(
    [record.properties[RECORD_KEY.deviceId], record.properties.kind, record.body.toString()],
    ['child-a/filter', 'filtered', '{"v":1}'],
    'durable upstream, from the module',
  );

  const device = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
  t.teardown(() => device.endAsync(true));
  await device.publishAsync('devices/child-a/messages/events/temp=40', '{"temp":40}', { qos: 1 });
  t.same(
    hub.status().localBacklog,
    { 'gw-1/analyzer/inputs/in1': 1, 'gw-1/analyzer/inputs/alerts': 0, 'gw-1/analyzer/inputs/filtered': 1 },
    "the gateway module's inputs wait in their lanes",
  );
  const analyzer = await moduleChild(port, 'gw-1', 'analyzer', keyAnalyzer);
  t.teardown(() => analyzer.endAsync(true));
  const inputs: string[] = [];
  analyzer.on('message', (topic, payload) => inputs.push(`${topic} ${payload.toString()}`));
  await analyzer.subscribeAsync('devices/gw-1/modules/analyzer/inputs/#', { qos: 1 });
  await until(
    'inputs delivered and acked',
    () => inputs.length === 2 && Object.values(hub.status().localBacklog).every((n) => n === 0),
  );
  inputs.sort();
  t.match(
    inputs[0],
    /^devices\/gw-1\/modules\/analyzer\/inputs\/filtered\/\S*kind=filtered\S* \{"v":1\}$/,
    "a module's messages routed by module source and $connectionModuleId",
  );
  t.match(
    inputs[1],
    /^devices\/gw-1\/modules\/analyzer\/inputs\/in1\/\S*temp=40\S* \{"temp":40\}$/,
    'on its inputs topic, input named in the path',
  );

  const filterReplies = responses(filter);
  const deviceReplies = responses(device);
  await filter.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
  await device.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
  await filter.publishAsync('$iothub/twin/PATCH/properties/reported/?$rid=1', '{"threshold":7}', { qos: 1 });
  await filter.publishAsync('$iothub/twin/GET/?$rid=2', '', { qos: 1 });
  await device.publishAsync('$iothub/twin/GET/?$rid=3', '', { qos: 1 });
  await until('twin answers', () => filterReplies.has('2') && deviceReplies.has('3'));
  t.match(filterReplies.get('1')?.topic, /^\$iothub\/twin\/res\/204\//);
  t.match(
    JSON.parse(filterReplies.get('2')!.body).reported,
    { threshold: 7 },
    "the module's twin holds its reported patch",
  );
  t.notOk('threshold' in JSON.parse(deviceReplies.get('3')!.body).reported, "the device's twin is a different twin");

  filter.on('message', (topic) => {
    const call = /^\$iothub\/methods\/POST\/ping\/\?\$rid=(.+)$/.exec(topic);
    if (call !== null) filter.publish(`$iothub/methods/res/200/?$rid=${call[1]}`, '{"pong":true}');
  });
  await filter.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
  const direct = await hub.methods.invoke('child-a/filter', 'ping', Buffer.from('{}'));
  t.same([direct.status, direct.payload.toString()], [200, '{"pong":true}'], 'a module method answered locally');
  await device.subscribeAsync('$outpost/methods/res/#', { qos: 0 });
  await device.publishAsync('$outpost/methods/POST/child-a/filter/ping/?$rid=9', '{}', { qos: 1 });
  await until('child-to-module call answered', () => deviceReplies.has('9'));
  t.match(deviceReplies.get('9')!.topic, /^\$outpost\/methods\/res\/200\//, 'a child calls a module method');
});

t.test('the azure-iot-device ModuleClient connects through the hub with GatewayHostName over TLS', async (t) => {
  const certs = await hubCerts(tempDir(t, 'outpost-hub-module-certs-'));
  const { hub, log, port } = await setup(t, certs);
  const connectionString =
    `HostName=${HUB_HOST};DeviceId=gw-1;ModuleId=analyzer;SharedAccessKey=${keyAnalyzer};` +
    `GatewayHostName=localhost:${hub.status().ports.tls}`;
  const client = ModuleClient.fromConnectionString(connectionString, Mqtt);
  await client.setOptions({ ca: certs.ca.cert });
  await client.open();
  t.teardown(() => client.close());
  const inputs: Array<[string, string]> = [];
  client.on('inputMessage', (input: string, message: azureDevice.Message) => {
    inputs.push([input, message.getData().toString()]);
    client.complete(message, () => {});
  });
  await client.sendEvent(new Message('{"from":"analyzer"}'));
  const [record] = await (await log.lane(UPSTREAM_LANE)).read(1);
  t.equal(record.properties[RECORD_KEY.deviceId], 'gw-1/analyzer', 'SDK module telemetry is durable upstream');

  const device = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
  t.teardown(() => device.endAsync(true));
  await device.publishAsync('devices/child-a/messages/events/', '{"temp":50}', { qos: 1 });
  await until('SDK module got its input', () => inputs.length === 1);
  t.same(inputs, [['in1', '{"temp":50}']], "delivered as an 'inputMessage' on in1");

  const twin = await client.getTwin();
  await new Promise<void>((resolve, reject) =>
    twin.properties.reported.update({ mode: 'edge' }, (err?: Error) => (err ? reject(err) : resolve())),
  );
  t.equal((await client.getTwin()).properties.reported.mode, 'edge', 'module twin round trip');
  client.onMethod('ping', (_request, response) => void response?.send(200, { pong: 'module' }));
  // The SDK subscribes to methods in the background after onMethod; 404 means "not subscribed yet".
  let result = await hub.methods.invoke('gw-1/analyzer', 'ping', Buffer.from('{}'));
  for (let tries = 0; result.status === 404 && tries < 250; tries += 1) {
    await sleep(20);
    result = await hub.methods.invoke('gw-1/analyzer', 'ping', Buffer.from('{}'));
  }
  t.same(
    [result.status, JSON.parse(result.payload.toString())],
    [200, { pong: 'module' }],
    'SDK module method answered',
  );
});

t.test(
  'module outputs: sendOutputEvent reaches only the routes for its output, and the output name is kept',
  async (t) => {
    const certs = await hubCerts(tempDir(t, 'outpost-hub-output-certs-'));
    const { hub, log } = await setup(t, certs);
    const gateway = `GatewayHostName=localhost:${hub.status().ports.tls}`;
    const analyzer = ModuleClient.fromConnectionString(
      `HostName=${HUB_HOST};DeviceId=gw-1;ModuleId=analyzer;SharedAccessKey=${keyAnalyzer};${gateway}`,
      Mqtt,
    );
    const filter = ModuleClient.fromConnectionString(
      `HostName=${HUB_HOST};DeviceId=child-a;ModuleId=filter;SharedAccessKey=${keyFilter};${gateway}`,
      Mqtt,
    );
    for (const client of [analyzer, filter]) {
      await client.setOptions({ ca: certs.ca.cert });
      await client.open();
      t.teardown(() => client.close());
    }
    const inputs: string[] = [];
    analyzer.on('inputMessage', (input: string, message: azureDevice.Message) => {
      inputs.push(`${input}:${message.getData().toString()}`);
      analyzer.complete(message, () => {});
    });
    await filter.sendOutputEvent('alerts', new Message('hot'));
    await filter.sendOutputEvent('other', new Message('fine'));
    await until('the analyzer got its inputs', () => inputs.length === 3);
    t.same(
      inputs.sort(),
      ['alerts:hot', 'filtered:fine', 'filtered:hot'],
      '/outputs/alerts takes only the alerts output; /* takes both',
    );
    const upstream = await (await log.lane(UPSTREAM_LANE)).read(1);
    t.same(
      upstream.map((r) => [r.body.toString(), r.properties[RECORD_KEY.outputName]]),
      [
        ['hot', 'alerts'],
        ['fine', 'other'],
      ],
      'the output name is stored with the record',
    );
  },
);

t.test('route sources and targets for modules', async (t) => {
  const { parseRoute } = await import('../../../firmware/router/routes.js');
  const route = parseRoute(
    'r',
    'FROM /messages/modules/filter/outputs/* INTO BrokeredEndpoint("/modules/analyzer/inputs/in1")',
    'gw-1',
  );
  t.same(
    [route.fromDeviceId, route.fromOutput, route.endpoint],
    ['gw-1/filter', '*', { kind: 'local', deviceId: 'gw-1/analyzer', input: 'in1' }],
    "IoT Edge's form names this gateway's modules",
  );
  t.equal(
    parseRoute('r', 'FROM /messages/modules/filter/outputs/out1 INTO $upstream', 'gw-1').fromOutput,
    'out1',
    'one output',
  );
  t.equal(
    parseRoute('r', 'FROM /messages/devices/d/modules/m/outputs/out-2 INTO $upstream').fromOutput,
    'out-2',
    "a child's module output",
  );
  t.equal(
    parseRoute('r', 'FROM /messages/modules/filter/* INTO $upstream', 'gw-1').fromOutput,
    null,
    'every message of the module',
  );
  t.throws(() => parseRoute('r', 'FROM /messages/modules/filter/outputs/a b INTO $upstream', 'gw-1'), /route "r"/);
  t.throws(() => parseRoute('r', 'FROM /messages/modules/filter/outputs/ INTO $upstream', 'gw-1'), /FROM must be/);
  t.throws(
    () => parseRoute('r', 'FROM /messages/* INTO BrokeredEndpoint("/modules/analyzer/inputs/in1")'),
    /route "r": BrokeredEndpoint must be "\/devices\/<deviceId>\/inputs\/<input>", "\/modules/,
    'without a gateway id the module form is refused, naming the forms',
  );
  t.throws(
    () => parseRoute('r', 'FROM /messages/modules/a/b/* INTO $upstream', 'gw-1'),
    /route "r": FROM must be \/messages\/\*, /,
  );
});

t.test('scope documents: modules are optional, named in errors, and follow their device', async (t) => {
  const { parseScopeDocument } = await import('../../../firmware/auth/identity.js');
  const old = parseScopeDocument(scopeDocument('gw-1', 1, [{ deviceId: 'child-a', key: keyA }]), 'gw-1');
  t.same(
    old.devices.map((d) => d.deviceId),
    ['child-a'],
    'a document without modules means what it always did',
  );
  const doc = scope(2);
  t.same(
    parseScopeDocument(doc, 'gw-1').devices.map((d) => d.deviceId),
    ['child-a', 'child-a/filter', 'gw-1/analyzer'],
  );
  doc.devices[0] = { ...doc.devices[0], status: 'disabled' } as (typeof doc.devices)[0];
  t.equal(
    parseScopeDocument(doc, 'gw-1').devices.find((d) => d.deviceId === 'child-a/filter')?.status,
    'disabled',
    "a disabled device's modules are disabled",
  );
  t.throws(
    () =>
      parseScopeDocument({ ...doc, modules: [{ moduleId: 'a/b', auth: { type: 'sas', primaryKey: keyA } }] }, 'gw-1'),
    /scope\.modules\[0\]\.moduleId must match/,
  );
  t.throws(
    () =>
      parseScopeDocument(
        {
          ...doc,
          modules: [
            { moduleId: 'x', auth: { type: 'sas', primaryKey: keyA } },
            { moduleId: 'x', auth: { type: 'sas', primaryKey: keyA } },
          ],
        },
        'gw-1',
      ),
    /"gw-1\/x" is listed twice/,
  );
});
