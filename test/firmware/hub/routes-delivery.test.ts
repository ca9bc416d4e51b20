import t, { type Test } from 'tap';
import path from 'node:path';
import { startHub } from '../../../firmware/hub/index.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { RingLog } from '../../../firmware/store/log.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { mqttChild, newKey, sasPassword, scopeDocument, until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** Routes into $upstream and a local endpoint, PUBACK only after durability, delivery across a restart. */

const keyA = newKey();
const keyB = newKey();
const routes = {
  hot: "FROM /messages/* WHERE $deviceId = 'child-a' AND temp > 30 INTO $upstream",
  alerts:
    'FROM /messages/devices/child-a/* WHERE temp > 30 OR $body.level = "high" ' +
    'INTO BrokeredEndpoint("/devices/child-b/inputs/alerts")',
};

type Hub = Awaited<ReturnType<typeof startHub>>;

/** A scope broker with child-a and child-b, a ring log, and a hub on them started (and started again) by `start`. */
async function routesHub(t: Test): Promise<{ log: RingLog; start: () => Promise<Hub> }> {
  const dir = tempDir(t, 'outpost-hub-routes-');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  await publishScope(
    { url: broker.url },
    'gw-1',
    scopeDocument('gw-1', 1, [
      { deviceId: 'child-a', key: keyA },
      { deviceId: 'child-b', key: keyB },
    ]),
  );
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const start = () =>
    startHub({
      config: { hub: { tcp: { port: 0 }, tls: false }, routes },
      gatewayId: 'gw-1',
      log,
      dataDir: path.join(dir, 'data'),
      scopeBroker: { url: broker.url },
    });
  return { log, start };
}

/** child-b comes online after the restart: its three alerts, in order, on its input. */
async function alertsDelivered(t: Test, hub: Hub): Promise<void> {
  const b = await mqttChild(hub.status().ports.tcp!, 'child-b', sasPassword('child-b', keyB));
  t.teardown(() => b.endAsync(true));
  const got: Array<{ topic: string; body: string }> = [];
  b.on('message', (topic, payload) => got.push({ topic, body: payload.toString() }));
  await b.subscribeAsync('devices/child-b/messages/devicebound/#', { qos: 1 });
  await until(
    'alerts delivered and acked',
    () => got.length === 3 && hub.status().localBacklog['child-b/inputs/alerts'] === 0,
  );
  t.same(
    got.map((m) => JSON.parse(m.body)),
    [{ temp: 35 }, { temp: 41 }, { level: 'high' }],
    'in order',
  );
  t.match(
    got[0].topic,
    /^devices\/child-b\/messages\/devicebound\/.*inputName=alerts/,
    'the input is named in the property bag',
  );
  t.match(got[0].topic, /%24.to=%2Fdevices%2Fchild-b%2Finputs%2Falerts/);
}

t.test('routes, durable PUBACK, local endpoint delivered after a restart', async (t) => {
  const { log, start } = await routesHub(t);
  let hub = await start();
  await hub.refreshIdentities();
  const upstream = await log.lane(UPSTREAM_LANE);

  const a = await mqttChild(hub.status().ports.tcp!, 'child-a', sasPassword('child-a', keyA));
  const seen: number[] = [];
  for (const temp of [35, 20, 41]) {
    await a.publishAsync(
      `devices/child-a/messages/events/temp=${temp}&%24.ct=application%2Fjson`,
      JSON.stringify({ temp }),
      { qos: 1 },
    );
    // The PUBACK just arrived: the record must already be durable and readable.
    seen.push(upstream.lastDurableSeq());
  }
  t.same(
    seen,
    [1, 1, 2],
    'each hot reading durable in $upstream when its PUBACK arrived; the cold one not routed there',
  );
  const records = await upstream.read(1);
  t.same(
    records.map((r) => [r.properties[RECORD_KEY.deviceId], r.properties.temp, r.properties[RECORD_KEY.contentType]]),
    [
      ['child-a', '35', 'application/json'],
      ['child-a', '41', 'application/json'],
    ],
  );
  await a.publishAsync('devices/child-a/messages/events/%24.ct=application%2Fjson', JSON.stringify({ level: 'high' }), {
    qos: 1,
  });
  await a.publishAsync('devices/child-a/messages/events/', 'not json', { qos: 1 });
  t.equal(hub.status().unrouted, 2, 'messages no route matches are counted');
  t.same(hub.status().localBacklog, { 'child-b/inputs/alerts': 3 }, 'child-b offline: three alerts wait in their lane');
  await a.endAsync();

  await hub.stop();
  hub = await start();
  t.teardown(() => hub.stop());
  t.same(hub.status().localBacklog, { 'child-b/inputs/alerts': 3 }, 'the backlog survives a restart of the hub');
  await alertsDelivered(t, hub);
});

t.test('direct methods: 404 when not connected, 504 on timeout', async (t) => {
  const dir = tempDir(t, 'outpost-hub-methods-');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, [{ deviceId: 'child-a', key: keyA }]));
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false, methodTimeoutSecs: 1 } },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
  });
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  t.equal((await hub.methods.invoke('child-a', 'reboot', Buffer.from('{}'))).status, 404, 'not connected: 404 at once');
  const a = await mqttChild(hub.status().ports.tcp!, 'child-a', sasPassword('child-a', keyA));
  t.teardown(() => a.endAsync(true));
  await a.subscribeAsync('$iothub/methods/POST/#', { qos: 0 });
  t.equal(
    (await hub.methods.invoke('child-a', 'reboot', Buffer.from('{}'))).status,
    504,
    'connected but silent: 504 after the timeout',
  );
});
