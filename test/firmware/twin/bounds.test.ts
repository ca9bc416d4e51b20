import t, { type Test } from 'tap';
import { readdir, stat } from 'node:fs/promises';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { TwinError, TwinStore } from '../../../firmware/twin/store.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { mqttChild, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** One child cannot grow its twin (memory, disk) without bound while the gateway is offline. */

const key = newKey();

async function setup(t: Test) {
  const dir = tempDir(t, 'outpost-twin-bounds-');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, [{ deviceId: 'child-a', key }]));
  // No uplink: the gateway is offline, so pending patches only accumulate.
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false } },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
  });
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  const child = await mqttChild(hub.status().ports.tcp!, 'child-a', sasPassword('child-a', key));
  t.teardown(() => child.endAsync(true));
  await child.subscribeAsync('$iothub/twin/res/#', { qos: 0 });
  return { dir, hub, child: twinClient(child) };
}

/** Reported PATCHes the way the device SDK sends them, answered by status. */
function twinClient(client: MqttClient) {
  let rid = 0;
  const waiting = new Map<string, (reply: { status: number; body: string }) => void>();
  client.on('message', (topic, payload) => {
    const match = /^\$iothub\/twin\/res\/(\d+)\/\?\$rid=(\d+)/.exec(topic);
    if (match !== null) waiting.get(match[2]!)?.({ status: Number(match[1]), body: payload.toString() });
  });
  const request = (topic: string, body: string): Promise<{ status: number; body: string }> => {
    rid += 1;
    const id = String(rid);
    const answered = new Promise<{ status: number; body: string }>((resolve) => waiting.set(id, resolve));
    client.publish(`${topic}?$rid=${id}`, body, { qos: 0 });
    return answered;
  };
  return {
    patch: (body: Record<string, unknown>) => request('$iothub/twin/PATCH/properties/reported/', JSON.stringify(body)),
    get: async () => JSON.parse((await request('$iothub/twin/GET/', '')).body) as { reported: Record<string, unknown> },
  };
}

async function dirBytes(dir: string): Promise<number> {
  let total = 0;
  for (const name of await readdir(dir)) total += (await stat(path.join(dir, name))).size;
  return total;
}

t.test('patches of nulls for keys that never existed change nothing and store nothing', async (t) => {
  const { dir, child } = await setup(t);
  t.equal((await child.patch({ keep: 1 })).status, 204);
  let refusedOrFailed = 0;
  for (let round = 0; round < 20; round += 1) {
    const nulls = Object.fromEntries(Array.from({ length: 8_000 }, (_, i) => [`k${round}-${i}`, null]));
    if ((await child.patch(nulls)).status !== 204) refusedOrFailed += 1;
  }
  t.equal(refusedOrFailed, 0, 'answered 204 as IoT Hub would: deleting an absent key is not an error');
  const bytes = await dirBytes(path.join(dir, 'data', 'twins'));
  t.ok(bytes < 4_096, `twins/ holds ${bytes} bytes after 160,000 idle deletes`);
  t.equal((await child.patch({ keep: null })).status, 204, 'a delete of a key that exists is kept');
});

t.test('pending is bounded: offline set/delete cycles get 400 past TWIN_PENDING_BYTES_MAX', async (t) => {
  const { hub, child } = await setup(t);
  const value = 'x'.repeat(1_000);
  let refused: { status: number; body: string } | null = null;
  let refusedKeys: string[] = [];
  for (let round = 0; round < 40 && refused === null; round += 1) {
    // 20 long keys set, then deleted: each delete must reach the cloud, so each leaves a null behind.
    const names = Array.from({ length: 20 }, (_, i) => `${'n'.repeat(400)}-${round}-${i}`);
    const set = await child.patch(Object.fromEntries(names.map((n) => [n, value])));
    const del = set.status === 204 ? await child.patch(Object.fromEntries(names.map((n) => [n, null]))) : set;
    if (del.status !== 204) [refused, refusedKeys] = [del, set.status === 204 ? [] : names];
  }
  t.equal(refused?.status, 400, 'refused with 400');
  const message = (JSON.parse(refused?.body ?? '{}') as { message?: string }).message;
  t.match(message, /waiting for the cloud would exceed \d+ bytes \("TWIN_PENDING_BYTES_MAX"\)/, 'naming the limit');
  t.equal(hub.status().twins.refusals['too-large'], 1, 'counted in the hub status');
  const { reported } = await child.get();
  t.ok(refusedKeys.length > 0 && refusedKeys.every((k) => !(k in reported)), 'the refused patch changed nothing');
});

t.test('the twin store keeps to its disk budget; refusals change nothing', async (t) => {
  const dir = tempDir(t, 'outpost-twin-budget-');
  const budget = 200_000;
  const store = await TwinStore.open(dir, { storeBytesMax: budget });
  t.teardown(() => store.close());
  const value = 'v'.repeat(10_000);
  let refusal: unknown = null;
  let refusedId = '';
  for (let i = 0; i < 100 && refusal === null; i += 1) {
    refusedId = `dev-${i}`;
    await store.patchReported(refusedId, { a: value, b: value }).catch((err: unknown) => (refusal = err));
  }
  t.notOk(store.devices().includes(refusedId), 'the refused patch made no twin');
  t.ok(refusal instanceof TwinError && refusal.code === 'disk-budget', 'refused once the budget would be passed');
  t.match((refusal as Error).message, /disk budget of 200000 bytes \("TWIN_STORE_BYTES_MAX"\)/);
  const bytes = await dirBytes(path.join(dir, 'twins'));
  t.ok(bytes <= budget, `twins/ holds ${bytes} bytes, within the ${budget}-byte budget`);
  t.ok(store.bytes >= bytes * 0.9 && store.bytes <= budget, `the store's count (${store.bytes}) tracks the files`);
  t.equal(store.refusals.get('disk-budget'), 1);
});
