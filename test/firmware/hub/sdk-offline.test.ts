import t, { type Test } from 'tap';
import path from 'node:path';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { startHub } from '../../../firmware/hub/index.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { RingLog } from '../../../firmware/store/log.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { createTransport } from '../../../firmware/uplink/transports.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import {
  HUB_HOST,
  HookList,
  hubCerts,
  mqttChild,
  newKey,
  sasPassword,
  scopeDocument,
  until,
} from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

const { Client, Message } = azureDevice;

/**
 * The end-to-end case: a child on the real azure-iot-device-mqtt SDK connects through the hub over
 * TLS with a SAS token while the uplink is down, sends telemetry, updates reported properties and answers
 * a method a second child calls; when the uplink returns, the cloud (the IoT Hub emulator) gets it all.
 */

/** The telemetry child-1 sends while the uplink is down. */
const TELEMETRY_MESSAGES = 20;

/** The pieces of the offline gateway: the cloud behind a proxy that is refusing, the hub, its pump. */
interface OfflineGateway {
  certs: Awaited<ReturnType<typeof hubCerts>>;
  cloud: IotHubEmulator;
  proxy: FaultProxy;
  hub: Awaited<ReturnType<typeof startHub>>;
  pump: Pump;
  key1: string;
  key2: string;
}

/** A TLS hub with child-1 and child-2 in its twin's scope, and its uplink up once, then cut and refused. */
async function offlineGateway(t: Test): Promise<OfflineGateway> {
  const dir = tempDir(t, 'outpost-hub-sdk-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const cloud = await IotHubEmulator.start();
  t.teardown(() => cloud.stop());
  const proxy = await FaultProxy.start({ targetPort: cloud.port });
  t.teardown(() => proxy.close());
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());

  const key1 = newKey();
  const key2 = newKey();
  cloud.patchDesired('gw-1', {
    outpostScope: scopeDocument('gw-1', 1, [
      { deviceId: 'child-1', key: key1 },
      { deviceId: 'child-2', key: key2 },
    ]),
  });
  const hooks = new HookList();
  const hub = await startHub({
    config: {
      hub: {
        tcp: { port: 0 },
        tls: { port: 0, certPath: certs.certPath, keyPath: certs.keyPath },
        methods: { allow: { 'child-2': ['child-1/ping'] } },
      },
    },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    uplink: hooks,
  });
  t.teardown(() => hub.stop());
  const transport = createTransport({
    protocol: 'azure',
    connectionString: cloud.addDevice('gw-1', `localhost:${proxy.port}`),
    ca: cloud.ca.cert,
  });
  const pump = new Pump({
    gatewayId: 'gw-1',
    transport,
    lanes: [{ lane: await log.lane(UPSTREAM_LANE) }],
    resyncHooks: hooks.hooks,
    backoff: { baseMs: 50, maxMs: 300 },
    connectTimeoutMs: 3_000,
    publishTimeoutMs: 3_000,
    resyncTimeoutMs: 2_000,
  });
  pump.start();
  t.teardown(() => pump.stop());
  await until('identities synced from the gateway twin', () => hub.status().identities.devices === 2);

  await until('uplink up and resynced', () => pump.status().link === 'up');
  proxy.refuse();
  proxy.cut();
  await until('uplink down', () => pump.status().link !== 'up');
  return { certs, cloud, proxy, hub, pump, key1, key2 };
}

/** child-1 on the real SDK over TLS: telemetry and two reported patches (one deleting with null), offline. */
async function childSendsOffline(t: Test, { certs, hub, key1 }: OfflineGateway): Promise<void> {
  const { tls } = hub.status().ports;
  const child = Client.fromConnectionString(
    `HostName=${HUB_HOST};DeviceId=child-1;SharedAccessKey=${key1};GatewayHostName=localhost:${tls}`,
    Mqtt,
  );
  await child.setOptions({ ca: certs.ca.cert });
  await child.open();
  t.teardown(() => child.close());
  child.onDeviceMethod('ping', (request, response) => void response.send(200, { pong: request.payload }));

  for (let n = 1; n <= TELEMETRY_MESSAGES; n += 1) {
    const message = new Message(JSON.stringify({ n }));
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('seq', String(n));
    await child.sendEvent(message);
  }
  const twin = await child.getTwin();
  await new Promise<void>((resolve, reject) =>
    twin.properties.reported.update({ firmware: '1.2', limits: { max: 40 } }, (err?: Error) =>
      err ? reject(err) : resolve(),
    ),
  );
  await new Promise<void>((resolve, reject) =>
    twin.properties.reported.update({ limits: { max: null, min: 5 } }, (err?: Error) =>
      err ? reject(err) : resolve(),
    ),
  );
}

/** child-2 calls child-1's method through the hub: answered locally, with the uplink down. */
async function childToChildMethod(t: Test, { hub, key2 }: OfflineGateway): Promise<void> {
  const { tcp } = hub.status().ports;
  // The SDK subscribes to methods asynchronously; the gateway's own call tells when it listens.
  await until('child-1 listening for methods', () => hub.status().connected.includes('child-1'));
  for (
    let attempt = 0;
    attempt < 100 && (await hub.methods.invoke('child-1', 'ping', Buffer.from('0'))).status === 404;
    attempt += 1
  ) {
    await new Promise((r) => setTimeout(r, 20));
  }
  const caller = await mqttChild(tcp!, 'child-2', sasPassword('child-2', key2));
  t.teardown(() => caller.endAsync(true));
  await caller.subscribeAsync('$outpost/methods/res/#', { qos: 0 });
  const answered = new Promise<{ topic: string; body: unknown }>((resolve) =>
    caller.on('message', (topic, payload) => resolve({ topic, body: JSON.parse(payload.toString()) })),
  );
  await caller.publishAsync('$outpost/methods/POST/child-1/ping/?$rid=7', JSON.stringify({ x: 1 }), { qos: 1 });
  t.same(
    await answered,
    { topic: '$outpost/methods/res/200/?$rid=7', body: { pong: { x: 1 } } },
    'child-2 called a method on child-1, answered locally',
  );
}

t.test('SDK child offline over TLS: telemetry in order and reported properties reach the cloud after', async (t) => {
  const world = await offlineGateway(t);
  const { cloud, proxy, pump } = world;
  await childSendsOffline(t, world);
  await childToChildMethod(t, world);

  t.equal(cloud.telemetry.length, 0, 'nothing reached the cloud while the uplink was down');
  proxy.pass();
  pump.wake('test');
  const fromChild = () => cloud.telemetry.filter((r) => r.properties['outpost-device-id'] === 'child-1');
  await until('telemetry at the cloud', () => fromChild().length >= TELEMETRY_MESSAGES);
  t.same(
    fromChild().map((r) => JSON.parse(r.body.toString()).n),
    Array.from({ length: TELEMETRY_MESSAGES }, (_, i) => i + 1),
    'in order, none lost',
  );
  t.equal(fromChild()[0].properties.seq, '1', 'application properties kept');
  const reported = () =>
    (cloud.twin('gw-1').reported.outpostChildren as Record<string, Record<string, unknown>> | undefined)?.['child-1'];
  await until('reported properties reconciled', () => reported()?.firmware === '1.2');
  t.same(reported(), { firmware: '1.2', limits: { min: 5 } }, 'offline patches merged, null deleted');
});
