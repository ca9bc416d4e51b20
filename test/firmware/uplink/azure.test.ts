import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createRequire } from 'node:module';
import { sdkRefusal } from '../../../firmware/uplink/azure-refusal.js';
import { createTransport } from '../../../firmware/uplink/transports.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { checkDelivery } from '../../support/delivery.js';
import { until } from '../../support/until.js';

/** The azure transport with the real azure-iot-device SDK, against the IoT Hub emulator over TLS. */

/** The emulator, a fault proxy in front of it, and the transport of one device dialling the proxy. */
async function azureBehindProxy(t: Test, deviceId: string) {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const proxy = await FaultProxy.start({ targetPort: hub.port });
  t.teardown(() => proxy.close());
  const connectionString = hub.addDevice(deviceId, `localhost:${proxy.port}`);
  const transport = createTransport({ protocol: 'azure', connectionString, ca: hub.ca.cert });
  return { hub, proxy, transport };
}

t.test('telemetry in order across outages, twin GET/PATCH, desired patch, method', async (t) => {
  const { hub, proxy, transport } = await azureBehindProxy(t, 'gw-az');
  const desired: Record<string, unknown>[] = [];
  transport.twin!.onDesired((patch) => desired.push(patch));
  transport.onMethod!('ping', async (payload) => ({ status: 200, payload: { pong: payload } }));
  const resyncOrder: string[] = [];
  const lane = new MemoryLane('telemetry');
  const pump = new Pump({
    gatewayId: 'gw-az',
    transport,
    lanes: [{ lane }],
    publishTimeoutMs: 1_000,
    backoff: { baseMs: 50, maxMs: 300 },
    resyncHooks: [
      { name: 'settings', run: async () => void resyncOrder.push('settings') },
      {
        name: 'twin',
        run: async (tr) => {
          resyncOrder.push('twin');
          await tr.twin!.patchReported({ outpost: { connects: resyncOrder.length / 2 } });
        },
      },
    ],
  });
  pump.start();
  t.teardown(() => pump.stop());

  const total = 600;
  for (let i = 1; i <= total; i += 1) {
    await lane.append({
      body: Buffer.from(String(i)),
      properties: { [RECORD_KEY.deviceId]: i % 2 ? 'child-a' : 'gw-az', n: String(i) },
    });
    if (i % 150 === 0) {
      await until('some telemetry', () => hub.telemetry.length >= i - 100);
      proxy.cut();
    }
  }
  await until('all telemetry', () => new Set(hub.telemetry.map((r) => r.body.toString())).size === total);
  const values = hub.telemetry.map((r) => Number(r.body.toString()));
  t.same(checkDelivery(values, total, 100).problems, [], 'in stored order, replays only within the window');
  t.ok(pump.status().connects >= 4, `reconnected after each cut (${pump.status().connects} connects)`);
  t.match(hub.telemetry.find((r) => r.body.toString() === '1')?.properties, {
    '$.mid': 'gw-az:telemetry:1',
    'outpost-device-id': 'child-a',
    n: '1',
    'iothub-creation-time-utc': /^\d{4}-\d\d-\d\dT/,
  });

  t.same(resyncOrder.slice(0, 2), ['settings', 'twin'], 'hooks run in order on connect');
  t.equal(resyncOrder.length, pump.status().connects * 2, 'and again on every reconnect');
  t.match(hub.twin('gw-az').reported, { outpost: { connects: pump.status().connects } }, 'reported PATCH landed');
  const twin = await transport.twin!.get();
  t.match(twin.reported, { outpost: { connects: pump.status().connects } }, 'twin GET sees it');

  hub.patchDesired('gw-az', { ttlSecs: 600 });
  await until('desired patch', () => desired.some((p) => p.ttlSecs === 600));
  await until('method subscription', () => hub.isSubscribed('gw-az', '$iothub/methods/POST/#'));
  t.same(await hub.invokeMethod('gw-az', 'ping', { n: 1 }), { status: 200, payload: { pong: { n: 1 } } });
});

t.test('bad azure options are refused by name', async (t) => {
  t.throws(
    () => createTransport({ protocol: 'azure', connectionString: 'DeviceId=x;SharedAccessKey=y' }),
    /"connectionString" must contain HostName/,
  );
  t.throws(
    () => createTransport({ protocol: 'azure', connectionString: 'HostName=h;DeviceId=x;x509=true' }),
    /"cert" and "key" are required/,
  );
  t.throws(() => createTransport({ protocol: 'nope' } as never), /"protocol" must be one of mqtt, azure/);
});

/** Bound on waits for what happens at once after destroy(); the SDK left alone takes 60 s (its CONNACK timeout). */
const PROMPT_MS = 5_000;

t.test('destroy() abandons a connect hung on a black-holed link and closes its socket', async (t) => {
  const { hub, proxy, transport } = await azureBehindProxy(t, 'gw-hole');
  proxy.blackhole();
  const connecting = transport.connect().then(
    () => 'connected',
    (err: Error) => err,
  );
  await until('the connect to reach the proxy', () => proxy.connectionCount === 1);
  await transport.destroy();
  const outcome = await Promise.race([connecting, sleep(PROMPT_MS).then(() => 'still pending')]);
  t.match(outcome, { code: 'CONNECT', message: /destroyed/ }, 'connect() rejects at once, naming the destroy');

  // The link comes back. An abandoned connect whose socket were still open would now reach the hub.
  proxy.pass();
  await until('the proxy to drop the abandoned connection', () => proxy.connectionCount === 0, PROMPT_MS);
  t.equal(hub.operations('gw-hole', 'connect'), 0, 'the abandoned socket was closed: it never reached the hub');
  await transport.connect();
  t.ok(hub.isConnected('gw-hole'), 'connects once the link is back');
  await transport.close();
});

t.test("over IoT Hub's 256 KiB: dead-lettered as too-large before it is sent; the link stays", async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const transport = createTransport({ protocol: 'azure', connectionString: hub.addDevice('gw-big'), ca: hub.ca.cert });
  const lane = new MemoryLane('telemetry');
  const deadLetterLane = new MemoryLane('deadletter');
  const backoff = { baseMs: 50, maxMs: 300 };
  const pump = new Pump({ gatewayId: 'gw-big', transport, lanes: [{ lane }], deadLetterLane, backoff });
  const KiB = 1024;
  // Under the SDK's own check (the body only) but over with the property; over both; a large one that fits.
  const records = [
    { n: '1', body: Buffer.from('1') },
    { n: '2', body: Buffer.alloc(200 * KiB, 0x61), pad: 'p'.repeat(60 * KiB) },
    { n: '3', body: Buffer.alloc(300 * KiB, 0x62) },
    { n: '4', body: Buffer.from('4') },
    { n: '5', body: Buffer.alloc(250 * KiB, 0x63) },
  ];
  for (const { n, body, pad } of records) await lane.append({ body, properties: { n, ...(pad ? { pad } : {}) } });
  pump.start();
  t.teardown(() => pump.stop());
  await until('the rest delivered', () => hub.telemetry.length === 3 && pump.status().deadLetters.total === 2);
  t.same(
    hub.telemetry.map((r) => r.properties.n),
    ['1', '4', '5'],
    'the lane moved on past both, in order',
  );
  t.same(pump.status().deadLetters.byReason, { 'too-large': 2 });
  t.equal(hub.operations('gw-big', 'telemetry-too-large'), 0, 'neither was sent: IoT Hub would have closed the link');
  t.equal(pump.status().connects, 1, 'no reconnect');
  t.equal(hub.operations('gw-big', 'connect'), 1);
  await until('the lane acked to the end', () => lane.ackedSeq() === 5);
});

// The errors the SDK throws are its own copy of azure-iot-common's (a dependency of the SDK, not of outpost:
// production matches them by name), so they are loaded from where the SDK loads them.
const sdkRequire = createRequire(import.meta.resolve('azure-iot-device'));
type ErrorClass = new (message: string) => Error;
const sdkErrors = (sdkRequire('azure-iot-common') as { errors: Record<string, ErrorClass> }).errors;

t.test("the SDK's send errors read as permanent or temporary refusals, or as a lost connection", async (t) => {
  const expect: Array<[Error, { reason: string; permanent: boolean } | null]> = [
    [new sdkErrors.MessageTooLargeError('big'), { reason: 'too-large', permanent: true }],
    [new sdkErrors.FormatError('bad'), { reason: 'azure-format-error', permanent: true }],
    [new sdkErrors.ThrottlingError('slow down'), { reason: 'azure-throttled', permanent: false }],
    [new sdkErrors.IotHubQuotaExceededError('quota'), { reason: 'azure-quota-exceeded', permanent: false }],
    [new sdkErrors.UnauthorizedError('who'), { reason: 'azure-unauthorized', permanent: false }],
    [new sdkErrors.DeviceNotFoundError('gone'), { reason: 'azure-device-not-found', permanent: false }],
    [new sdkErrors.NotConnectedError('down'), null],
    [new sdkErrors.TimeoutError('late'), null],
    [new Error('constructor'), null],
  ];
  for (const [err, refusal] of expect) t.same(sdkRefusal(err), refusal, err.name);
});
