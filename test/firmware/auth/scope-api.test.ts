import t from 'tap';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseScopeDocument } from '../../../firmware/auth/identity.js';
import { fetchDeviceScope, ScopeApiError, type DeviceScopeSource } from '../../../firmware/auth/scope-api.js';
import { scopeDocumentFromApi } from '../../../firmware/auth/scope-convert.js';
import { parseUplinkConfig, type AzureUplinkConfig } from '../../../firmware/uplink/config.js';
import { loadUplinkFiles } from '../../../firmware/uplink/uplink-files.js';
import { IotHubEmulator, EDGE_HUB_MODULE_ID, type EmulatorOptions } from '../../support/iothub-emulator.js';
import { tempDir } from '../../support/tmp.js';

/**
 * outpost's device-scope API client against the emulator (which follows edgeHub's client and ScopeResult),
 * the conversion into a scope document, and the edge-mode board options.
 */

async function edgeHub(options: EmulatorOptions = {}) {
  const hub = await IotHubEmulator.start(options);
  hub.createEdgeDevice('gw');
  const source: DeviceScopeSource = {
    hostName: hub.hostName,
    gatewayId: 'gw',
    ca: hub.ca.cert,
    edgeHubKey: hub.registry.module('gw', EDGE_HUB_MODULE_ID)!.authentication.symmetricKey.primaryKey!,
  };
  return { hub, source };
}

t.test('every kind of child becomes a cache identity; the gateway and its system modules never do', async (t) => {
  const { hub, source } = await edgeHub({ scopePageSizeMax: 3 });
  t.teardown(() => hub.stop());
  hub.createDevice('sas-child');
  hub.createDevice('thumb-child', { type: 'selfSigned', primaryThumbprint: 'ab'.repeat(32) });
  hub.createDevice('ca-child', { type: 'certificateAuthority' });
  hub.createDevice('off-child');
  hub.createDevice('no-auth', { type: 'none' });
  for (const id of ['sas-child', 'thumb-child', 'ca-child', 'off-child', 'no-auth']) hub.addChild('gw', id);
  hub.disableDevice('off-child');
  hub.createModule('sas-child', 'reader');
  hub.createModule('gw', 'filter');
  const result = await fetchDeviceScope(source);
  const doc = parseScopeDocument(scopeDocumentFromApi(result, 'gw', hub.hostName, 0), 'gw');
  const byId = new Map(doc.devices.map((d) => [d.deviceId, d]));
  t.same([...byId.keys()].sort(), [
    'ca-child',
    'gw/filter',
    'off-child',
    'sas-child',
    'sas-child/reader',
    'thumb-child',
  ]);
  t.match(byId.get('sas-child'), {
    status: 'enabled',
    auth: { type: 'sas', primaryKey: String, secondaryKey: String },
  });
  t.match(byId.get('thumb-child'), { auth: { type: 'x509-thumbprint', primaryThumbprint: 'AB'.repeat(32) } });
  t.match(byId.get('ca-child'), { auth: { type: 'x509-ca' } });
  t.match(byId.get('off-child'), { status: 'disabled' });
  t.equal(byId.get('sas-child/reader')?.parent, 'gw');
  t.notOk(
    [...byId.keys()].some((id) => id.includes('$')),
    'no $edgeHub or $edgeAgent: their keys let no child in',
  );
  t.equal(doc.hubHostName, hub.hostName);
});

t.test('a token the hub refuses, a hub that never ends its pages: errors, not a partial list', async (t) => {
  const { hub, source } = await edgeHub();
  t.teardown(() => hub.stop());
  const wrong = { ...source, edgeHubKey: hub.registry.device('gw')!.authentication.symmetricKey.primaryKey! };
  const refused = await fetchDeviceScope(wrong).catch((e: ScopeApiError) => e);
  t.match(refused, { name: 'ScopeApiError', status: 401 }, "the device's own key is not the $edgeHub's");

  const endless = await IotHubEmulator.start({
    onScopeRequest: () => ({ status: 200, body: { devices: [], modules: [], continuationLink: 'again' } }),
  });
  t.teardown(() => endless.stop());
  endless.createEdgeDevice('gw');
  const looping = await fetchDeviceScope({ ...source, hostName: endless.hostName, ca: endless.ca.cert }).catch(
    (e: Error) => e,
  );
  t.match(looping, { message: /did not end within \d+ pages/ });
  const garbage = await IotHubEmulator.start({ onScopeRequest: () => ({ status: 200, body: [1, 2] }) });
  t.teardown(() => garbage.stop());
  const notObject = await fetchDeviceScope({ ...source, hostName: garbage.hostName, ca: garbage.ca.cert }).catch(
    (e: Error) => e,
  );
  t.match(notObject, { message: /not a JSON object/ });
});

t.test('uplink.azure: mode and the $edgeHub connection string are checked, naming the field', async (t) => {
  const dir = tempDir(t, 'outpost-azure-mode-');
  const board = path.join(dir, 'board.json');
  const connectionString = 'HostName=h.example;DeviceId=gw;SharedAccessKey=a2V5a2V5a2V5a2V5a2V5a2V5';
  const base = { protocol: 'azure', connectionString };
  const parse = (azure: unknown) => parseUplinkConfig({ ...base, azure }, board) as AzureUplinkConfig;
  t.equal((parseUplinkConfig(base, board) as AzureUplinkConfig).azure.mode, 'device', 'no section: device');
  t.same(
    parse({ edgeHubConnectionStringFile: 'eh.cs' }).azure,
    { mode: 'edge', edgeHubConnectionStringFile: path.join(dir, 'eh.cs') },
    'a file: edge, relative to board.json',
  );
  t.throws(() => parse({ mode: 'edge' }), /\$\.uplink\.azure\.edgeHubConnectionStringFile/);
  t.throws(() => parse({ mode: 'device', edgeHubConnectionStringFile: 'eh.cs' }), /\$\.uplink\.azure\.mode/);
  t.throws(() => parse({ mode: 'transparent' }), /\$\.uplink\.azure\.mode/);
  t.throws(() => parse({ edgeHub: 'x' }), /edgeHub/);
  const key = 'c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0';
  const cases = [
    [
      `HostName=h.example;DeviceId=other;ModuleId=$edgeHub;SharedAccessKey=${key}`,
      /DeviceId=gw \(identity\.gatewayId\)/,
    ],
    [`HostName=h.example;DeviceId=gw;ModuleId=$edgeAgent;SharedAccessKey=${key}`, /ModuleId=\$edgeHub/],
    ['HostName=h.example;DeviceId=gw;ModuleId=$edgeHub', /no SharedAccessKey/],
  ] as const;
  for (const [text, expected] of cases) {
    writeFileSync(path.join(dir, 'eh.cs'), text);
    const error = await loadUplinkFiles(parse({ edgeHubConnectionStringFile: 'eh.cs' }), 'gw').catch((e: Error) => e);
    t.match(error, { message: expected });
    t.match(error, { message: /\$\.uplink\.azure\.edgeHubConnectionStringFile/ });
    t.notMatch(String(error), key, 'the key is never in the error');
  }
  writeFileSync(path.join(dir, 'eh.cs'), `HostName=h.example;DeviceId=gw;ModuleId=$edgeHub;SharedAccessKey=${key}\n`);
  await loadUplinkFiles(parse({ edgeHubConnectionStringFile: 'eh.cs' }), 'gw');
  t.pass('a right one is accepted');
});
