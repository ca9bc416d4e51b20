import t from 'tap';
import path from 'node:path';
import { readdirSync, readFileSync } from 'node:fs';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { loadBoard } from '../../../firmware/board/board.js';
import { Runtime } from '../../../firmware/runtime.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { NO_RETRY } from '../../support/iothub-emulator-clients.js';
import { hubCerts, until, type HubCerts } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';
import { writeEdgeBoard } from '../../support/edge-gateway.js';

/**
 * Edge mode (issue 18): a child's twin is its own twin in IoT Hub. Real azure-iot-device children reach
 * IoT Hub through the gateway (GatewayHostName); the gateway is an IoT Edge device of the emulator, which a
 * fault proxy cuts off and brings back. What is checked is what a back end sees with the service API.
 */

const { Client } = azureDevice;
type DeviceClient = InstanceType<typeof Client>;
type Twin = Awaited<ReturnType<DeviceClient['getTwin']>>;
type Teardown = { teardown(fn: () => unknown): void };
const CHILDREN = ['child-1', 'child-2'];

interface Rig {
  cloud: IotHubEmulator;
  proxy: FaultProxy;
  certs: HubCerts;
  dir: string;
  /** The host name the gateway and the children's connection strings name: the proxy's. */
  host: string;
}

async function rig(t: Teardown): Promise<Rig> {
  const dir = tempDir(t, 'outpost-edge-twins-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const cloud = await IotHubEmulator.start();
  t.teardown(() => cloud.stop());
  const proxy = await FaultProxy.start({ targetPort: cloud.port });
  t.teardown(() => proxy.close());
  const host = `localhost:${proxy.port}`;
  const connections = cloud.createEdgeDevice('gw', host);
  for (const id of CHILDREN) {
    cloud.createDevice(id);
    cloud.addChild('gw', id);
  }
  writeEdgeBoard(dir, certs, cloud, connections, { backoff: { baseMs: 50, maxMs: 300 } });
  return { cloud, proxy, certs, dir, host };
}

async function startRuntime(t: Teardown, r: Rig): Promise<Runtime> {
  const runtime = new Runtime(await loadBoard(path.join(r.dir, 'board.json'), { files: true }), {
    dataDir: path.join(r.dir, 'data'),
  });
  await runtime.start();
  let stopped = false;
  t.teardown(() => (stopped ? undefined : runtime.stop()));
  const stop = runtime.stop.bind(runtime);
  runtime.stop = async () => {
    stopped = true;
    await stop();
  };
  return runtime;
}

/** A child with its standard connection string through the gateway; closed at teardown. */
async function child(t: Teardown, r: Rig, runtime: Runtime, deviceId: string): Promise<DeviceClient> {
  const port = runtime.status().hub!.ports.tls;
  const client = Client.fromConnectionString(
    `${r.cloud.connectionString(deviceId, undefined, r.host)};GatewayHostName=localhost:${port}`,
    Mqtt,
  );
  client.setRetryPolicy(NO_RETRY);
  await client.setOptions({ ca: r.certs.ca.cert });
  await client.open();
  t.teardown(() => client.close().catch(() => {}));
  await until(`${deviceId} connected to the hub`, () => runtime.status().hub!.connected.includes(deviceId));
  return client;
}

function report(twin: Twin, patch: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) =>
    twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())),
  );
}

/** The desired section the gateway's twin cache holds for `deviceId`, as persisted (node-persist files). */
function cachedDesired(r: Rig, deviceId: string): Record<string, unknown> | undefined {
  const dir = path.join(r.dir, 'data', 'twins');
  for (const name of readdirSync(dir)) {
    try {
      const item = JSON.parse(readFileSync(path.join(dir, name), 'utf8')) as { key?: string; value?: TwinFile };
      if (item.key === deviceId) return item.value?.desired;
    } catch {
      // A file being written: read again on the next poll.
    }
  }
  return undefined;
}

type TwinFile = { desired?: Record<string, unknown> };

const edgeTwins = (runtime: Runtime) => runtime.status().hub!.twins.edge!;

async function online(runtime: Runtime): Promise<void> {
  await until('the children read from IoT Hub', () => runtime.status().hub!.identities.devices === CHILDREN.length);
  await until('the gateway link up', () => runtime.status().link === 'up');
}

async function offline(r: Rig, runtime: Runtime): Promise<void> {
  r.proxy.refuse();
  r.proxy.cut();
  await until('the gateway link down', () => runtime.status().link !== 'up');
}

t.test("a child's reported patches made offline reach its own cloud twin after link-up and a restart", async (t) => {
  const r = await rig(t);
  let runtime = await startRuntime(t, r);
  await online(runtime);
  await offline(r, runtime);

  const one = await child(t, r, runtime, 'child-1');
  const twin = await one.getTwin();
  await report(twin, { temp: 21, unit: 'C' });
  await report(twin, { temp: 22, unit: null, fan: { speed: 3 } });
  await one.close();
  t.notOk('temp' in r.cloud.getTwin('child-1').reported, 'nothing reached IoT Hub while offline');

  await runtime.stop();
  runtime = await startRuntime(t, r);
  r.proxy.pass();
  await until("child-1's cloud twin has the patches", () => r.cloud.getTwin('child-1').reported.temp === 22);
  const reported = r.cloud.getTwin('child-1').reported;
  t.match(reported, { temp: 22, fan: { speed: 3 } }, 'both patches, merged, in order, after a restart');
  t.notOk('unit' in reported, 'the later delete won');
  t.equal(r.cloud.operations('child-1', 'twin-patch'), 1, 'the offline patches went up as one');
  const gateway = r.cloud.getTwin('gw').reported;
  t.notOk('outpostChildren' in gateway, 'the gateway twin does not carry the child');
  t.notOk('temp' in r.cloud.getTwin('child-2').reported, 'nor does another child get it');
  await until('the push counted', () => edgeTwins(runtime).pushes === 1);
  t.match(edgeTwins(runtime), { failures: 0, refused: 0 }, 'status: no failures');
});

t.test("desired set on the child's cloud twin reaches the connected child; online GET, PATCH go through", async (t) => {
  const r = await rig(t);
  const runtime = await startRuntime(t, r);
  await online(runtime);
  const one = await child(t, r, runtime, 'child-1');
  const twin = await one.getTwin();
  await until("child-1's upstream connection up", () => r.cloud.isConnected('child-1'));
  const patches: Array<Record<string, unknown>> = [];
  twin.on('properties.desired', (patch: Record<string, unknown>) => patches.push(patch));

  const version = r.cloud.updateDesired('child-1', undefined, { mode: 'eco', interval: 30 });
  await until('the desired patch at the child', () => patches.some((p) => p.$version === version));
  t.match(
    patches.find((p) => p.$version === version),
    { mode: 'eco', interval: 30 },
    'delivered with its $version',
  );
  t.equal(twin.properties.desired.mode, 'eco', "in the SDK's twin");

  const gets = r.cloud.operations('child-1', 'twin-get');
  await new Promise<void>((resolve, reject) => twin.get((err?: Error) => (err ? reject(err) : resolve())));
  t.equal(r.cloud.operations('child-1', 'twin-get'), gets + 1, "the child's GET went through to IoT Hub");
  t.equal(twin.properties.desired.$version, r.cloud.getTwin('child-1').desired.$version, "IoT Hub's $version");

  await report(twin, { online: true });
  t.equal(r.cloud.getTwin('child-1').reported.online, true, 'the PATCH is in IoT Hub when the child is answered');
  await t.rejects(report(twin, { 'bad.key': 1 }), 'a patch IoT Hub refuses is refused to the child');
  await report(twin, { after: 1 });
  t.equal(r.cloud.getTwin('child-1').reported.after, 1, 'and holds nothing back');
  t.equal(edgeTwins(runtime).refused, 1, 'the refusal counted');
  t.notOk('outpostChildren' in r.cloud.getTwin('gw').reported, 'and not in the gateway twin');

  await offline(r, runtime);
  const cached = await new Promise<Twin>((resolve, reject) =>
    one.getTwin((err, tw) => (err ? reject(err) : resolve(tw!))),
  );
  await new Promise<void>((resolve, reject) => cached.get((err?: Error) => (err ? reject(err) : resolve())));
  t.match(cached.properties.desired, { mode: 'eco', interval: 30 }, 'offline, the cache answers as IoT Hub did');
  t.equal(cached.properties.reported.online, true);
  t.notOk('bad.key' in cached.properties.reported, 'the refused patch left no trace in the cache');
});

t.test('a child offline during a desired change gets it when it connects', async (t) => {
  const r = await rig(t);
  const runtime = await startRuntime(t, r);
  await online(runtime);
  const version = r.cloud.updateDesired('child-2', undefined, { threshold: 7 });
  t.notOk(r.cloud.isConnected('child-2'), 'child-2 has no upstream connection yet');

  const two = await child(t, r, runtime, 'child-2');
  const twin = await two.getTwin();
  const patches: Array<Record<string, unknown>> = [];
  twin.on('properties.desired', (patch: Record<string, unknown>) => patches.push(patch));
  await until('child-2 has the change', () => twin.properties.desired.threshold === 7);
  t.pass('delivered on connect (in its GET or as a patch)');
  await until('the cache holds it', () => edgeTwins(runtime).pulls >= 1);

  await two.close();
  const later = r.cloud.updateDesired('child-2', undefined, { threshold: 9 });
  t.ok(later > version);
  // A read of child-2's twin started before the change (its connect's, its own GET's) may finish after it, so
  // a count of reads says nothing of the change: the cache itself, as persisted, must hold it.
  await until('the change read while the child is away', () => cachedDesired(r, 'child-2')?.threshold === 9);
  await offline(r, runtime);
  const again = await child(t, r, runtime, 'child-2');
  const cached = await again.getTwin();
  await until('offline, the cache gives it the change', () => cached.properties.desired.threshold === 9);
  t.equal(cached.properties.desired.$version, later, "at IoT Hub's $version");
});
