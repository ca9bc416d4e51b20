import t from 'tap';
import { TwinStore } from '../../../firmware/twin/store.js';
import { TwinSync } from '../../../firmware/twin/sync.js';
import { parseHubConfig } from '../../../firmware/hub/config.js';
import type { TwinChannel, UplinkTransport } from '../../../firmware/uplink/types.js';
import { until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** Offline reported patches, desired differences by $version, persistence across restarts. */

t.test('reported patches merge offline, survive a restart and are pushed once', async (t) => {
  const dir = tempDir(t, 'outpost-twin-');
  let store = await TwinStore.open(dir);
  await store.patchReported('dev-1', { fw: '1.0', net: { rssi: -70, ip: '10.0.0.2' } });
  await store.patchReported('dev-1', { net: { ip: null }, fw: '1.1' });
  store.close();
  store = await TwinStore.open(dir);
  t.teardown(() => store.close());
  t.same(store.get('dev-1').reported, { fw: '1.1', net: { rssi: -70 } }, 'local view merged, null deleted');
  t.same(
    store.pending(),
    [{ deviceId: 'dev-1', patch: { fw: '1.1', net: { rssi: -70, ip: null } }, generation: 2 }],
    'pending keeps the null for the cloud',
  );

  const pushed: Record<string, unknown>[] = [];
  let desired: Record<string, unknown> = {
    $version: 4,
    mode: 'eco',
    outpostChildren: { 'dev-1': { rate: 10, color: 'red' } },
  };
  const twin: TwinChannel = {
    get: async () => ({ desired, reported: {} }),
    patchReported: async (patch) => void pushed.push(patch),
    onDesired: () => () => {},
  };
  const delivered: Array<[string, Record<string, unknown>, number]> = [];
  const sync = new TwinSync({
    store,
    gatewayId: 'gw',
    deliverDesired: async (id, patch, version) => (delivered.push([id, patch, version]), true),
  });
  await sync.push(twin);
  await sync.push(twin);
  t.same(
    pushed,
    [{ outpostChildren: { 'dev-1': { fw: '1.1', net: { rssi: -70, ip: null } } } }],
    'pushed once under the gateway twin',
  );
  await sync.pull(twin);
  desired = { $version: 5, mode: 'eco', outpostChildren: { 'dev-1': { rate: 20 } } };
  await sync.pull(twin);
  await sync.pull(twin);
  t.same(
    delivered,
    [
      ['dev-1', { rate: 10, color: 'red' }, 4],
      ['dev-1', { color: null, rate: 20 }, 5],
    ],
    'each child gets only what changed, once per $version',
  );
  t.same(store.get('gw').desired, { mode: 'eco' }, "the gateway's own desired properties, without outpost's keys");
});

t.test(
  'azure: reported patches go up through the gateway twin while connected, not only at the next reconnect',
  async (t) => {
    const store = await TwinStore.open(tempDir(t, 'outpost-twin-live-'));
    t.teardown(() => store.close());
    const pushed: Record<string, unknown>[] = [];
    const twin: TwinChannel = {
      get: async () => ({ desired: { $version: 1 }, reported: {} }),
      patchReported: async (patch) => void pushed.push(patch),
      onDesired: () => () => {},
    };
    const disconnects: Array<(cause: Error) => void> = [];
    const transport = {
      twin,
      onDisconnect: (l: (cause: Error) => void) => (disconnects.push(l), () => {}),
    } as unknown as UplinkTransport;
    const sync = new TwinSync({ store, gatewayId: 'gw', deliverDesired: async () => true });
    t.teardown(() => sync.close());
    await store.patchReported('dev-1', { before: 1 });
    await sync.hook.run(transport);
    t.same(pushed, [{ outpostChildren: { 'dev-1': { before: 1 } } }], 'the resync pushes what waited');
    await store.patchReported('dev-1', { a: 1 });
    await store.patchReported('gw', { up: true });
    await until('the live push', () => pushed.length === 2 && store.pending().length === 0);
    t.same(
      pushed[1],
      { up: true, outpostChildren: { 'dev-1': { a: 1 } } },
      "one push for the patches close together, the gateway's own at the top",
    );
    t.same(store.pending(), [], 'nothing left pending');
    disconnects.forEach((l) => l(new Error('link down')));
    await store.patchReported('dev-1', { b: 2 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    t.equal(pushed.length, 2, 'nothing goes up while the link is down');
    t.same(
      store.pending().map((p) => p.patch),
      [{ b: 2 }],
      'it waits, pending, for the next resync',
    );
  },
);

t.test('config errors name the file and the JSON path', async (t) => {
  t.throws(() => parseHubConfig({ hub: { clientsMax: 0 } }, 'boards/x.json'), {
    message: 'boards/x.json: $.hub.clientsMax: expected an integer between 1 and 10000 (clients), got 0',
  });
  t.throws(() => parseHubConfig({ hub: { tls: { port: 8883 } } }), {
    message: 'board.json: $.hub.tls.certPath: expected a PEM file path, got nothing (the field is missing)',
  });
  t.throws(
    () => parseHubConfig({ hub: { bogus: 1 } }),
    /^board\.json: \$\.hub\.bogus: expected one of the known fields tcp, tls, .*, got "bogus"$/,
  );
  t.equal(parseHubConfig({}).messageBytesMax, 256 * 1024, 'message size limit defaults to 256 KiB');
});
