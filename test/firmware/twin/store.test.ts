import t from 'tap';
import { TwinStore } from '../../../firmware/twin/store.js';
import { TwinSync } from '../../../firmware/twin/sync.js';
import { parseHubConfig } from '../../../firmware/hub/config.js';
import type { TwinChannel } from '../../../firmware/uplink/types.js';
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
  t.same(store.pending(), [{ deviceId: 'dev-1', patch: { fw: '1.1', net: { rssi: -70, ip: null } }, generation: 2 }], 'pending keeps the null for the cloud');

  const pushed: Record<string, unknown>[] = [];
  let desired: Record<string, unknown> = { $version: 4, mode: 'eco', outpostChildren: { 'dev-1': { rate: 10, color: 'red' } } };
  const twin: TwinChannel = {
    get: async () => ({ desired, reported: {} }),
    patchReported: async (patch) => void pushed.push(patch),
    onDesired: () => () => {},
  };
  const delivered: Array<[string, Record<string, unknown>, number]> = [];
  const sync = new TwinSync({ store, gatewayId: 'gw', deliverDesired: async (id, patch, version) => (delivered.push([id, patch, version]), true) });
  await sync.push(twin);
  await sync.push(twin);
  t.same(pushed, [{ outpostChildren: { 'dev-1': { fw: '1.1', net: { rssi: -70, ip: null } } } }], 'pushed once under the gateway twin');
  await sync.pull(twin);
  desired = { $version: 5, mode: 'eco', outpostChildren: { 'dev-1': { rate: 20 } } };
  await sync.pull(twin);
  await sync.pull(twin);
  t.same(delivered, [
    ['dev-1', { rate: 10, color: 'red' }, 4],
    ['dev-1', { color: null, rate: 20 }, 5],
  ], 'each child gets only what changed, once per $version');
  t.same(store.get('gw').desired, { mode: 'eco' }, "the gateway's own desired properties, without outpost's keys");
});

t.test('config errors name the file and the JSON path', async (t) => {
  t.throws(() => parseHubConfig({ hub: { clientsMax: 0 } }, 'boards/x.json'), /boards\/x\.json: hub\.clientsMax must be an integer from 1 to 10000 clients, got 0/);
  t.throws(() => parseHubConfig({ hub: { tls: { port: 8883 } } }), /board\.json: hub\.tls\.certPath must be a file path/);
  t.throws(() => parseHubConfig({ hub: { bogus: 1 } }), /hub\.bogus is not a known option/);
  t.equal(parseHubConfig({}).messageBytesMax, 256 * 1024, 'message size limit defaults to 256 KiB');
});
