import t from 'tap';
import path from 'node:path';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { loadBoard } from '../../../firmware/board/board.js';
import { Runtime } from '../../../firmware/runtime.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { NO_RETRY } from '../../support/iothub-emulator-clients.js';
import { hubCerts, until, type HubCerts } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';
import { writeEdgeBoard } from '../../support/edge-gateway.js';

/**
 * Edge mode's child list (issue 18): the gateway is an IoT Edge device, outpost reads its children from IoT
 * Hub's device-scope API as its $edgeHub module, and real SDK children declared only in IoT Hub's registry
 * (no outpost document anywhere) authenticate at the local hub; removed ones are cut off; after a restart
 * with IoT Hub out of reach the cache still lets them in.
 */

const { Client, Message } = azureDevice;

async function startRuntime(dir: string): Promise<Runtime> {
  const runtime = new Runtime(await loadBoard(path.join(dir, 'board.json'), { files: true }), {
    dataDir: path.join(dir, 'data'),
  });
  await runtime.start();
  return runtime;
}

/** A child with the standard connection string, reaching IoT Hub through the gateway (GatewayHostName). */
async function child(cloud: IotHubEmulator, runtime: Runtime, certs: HubCerts, deviceId: string) {
  const port = runtime.status().hub!.ports.tls;
  const connection = `${cloud.connectionString(deviceId)};GatewayHostName=localhost:${port}`;
  const client = Client.fromConnectionString(connection, Mqtt);
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: certs.ca.cert });
  return client;
}

t.test('children from the device-scope API connect; a removed one is cut off; offline after a restart', async (t) => {
  const dir = tempDir(t, 'outpost-scope-edge-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const cloud = await IotHubEmulator.start({ scopePageSizeMax: 2 });
  let cloudUp = true;
  t.teardown(() => (cloudUp ? cloud.stop() : undefined));
  const connections = cloud.createEdgeDevice('gw');
  for (const id of ['child-1', 'child-2', 'child-3']) {
    cloud.createDevice(id);
    cloud.addChild('gw', id);
  }
  cloud.createDevice('stranger');
  writeEdgeBoard(dir, certs, cloud, connections);
  const runtime = await startRuntime(dir);
  let stopped = false;
  t.teardown(() => (stopped ? undefined : runtime.stop()));
  await until('the children read from IoT Hub', () => runtime.status().hub!.identities.devices === 3);

  const one = await child(cloud, runtime, certs, 'child-1');
  await one.open();
  const two = await child(cloud, runtime, certs, 'child-3');
  await two.open();
  t.teardown(() => two.close());
  await one.sendEvent(new Message('hello'));
  // The hub counts a child as connected once aedes reports it ready, just after its CONNACK went out.
  const connected = () => runtime.status().hub!.connected.sort().join();
  await until('both children connected', () => connected() === 'child-1,child-3');
  t.pass('both connected, one of them listed on a later page');
  await t.rejects((await child(cloud, runtime, certs, 'stranger')).open(), 'a device outside the scope is refused');

  const gone = new Promise<void>((resolve) => one.once('disconnect', () => resolve()));
  cloud.removeChild('gw', 'child-1');
  const syncs = runtime.status().hub!.identities.syncs;
  cloud.disconnect('gw');
  await until('the scope read again on the reconnect', () => runtime.status().hub!.identities.syncs > syncs);
  await gone;
  t.notOk(runtime.status().hub!.connected.includes('child-1'), 'the removed child is disconnected');
  await t.rejects((await child(cloud, runtime, certs, 'child-1')).open(), 'and refused');
  t.equal(runtime.status().hub!.identities.devices, 2);

  await two.close();
  await runtime.stop();
  stopped = true;
  await cloud.stop();
  cloudUp = false;
  const offline = await startRuntime(dir);
  t.teardown(() => offline.stop());
  const again = await child(cloud, offline, certs, 'child-3');
  await again.open();
  t.teardown(() => again.close());
  await until('the cached child connected', () => offline.status().hub!.connected.includes('child-3'));
  t.pass('IoT Hub gone: the cached child still connects');
});

t.test('a device-scope API that fails holds nothing back: the link comes up, the read is retried', async (t) => {
  const dir = tempDir(t, 'outpost-scope-edge-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  let failuresLeft = 2;
  const cloud = await IotHubEmulator.start({
    onScopeRequest: () =>
      failuresLeft-- > 0 ? { status: 503, body: { Message: 'ErrorCode:ServerBusy;' } } : undefined,
  });
  t.teardown(() => cloud.stop());
  const connections = cloud.createEdgeDevice('gw');
  cloud.createDevice('child-1');
  cloud.addChild('gw', 'child-1');
  writeEdgeBoard(dir, certs, cloud, connections);
  const runtime = await startRuntime(dir);
  t.teardown(() => runtime.stop());
  await until('the link up despite the failing read', () => runtime.status().link === 'up');
  await until('the read retried until it succeeded', () => runtime.status().hub!.identities.devices === 1);
  t.equal(runtime.status().hub!.identities.errors, 2, 'both failures counted');
  t.equal(cloud.operations('gw', 'connect'), 1, 'one uplink connection throughout: no reconnect over it');
});
