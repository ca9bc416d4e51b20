import t from 'tap';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { sasToken, scopeRequest } from '../../support/iothub-emulator-clients.js';

/**
 * The emulator's device-scope API, called as edgeHub's NestedDeviceScopeApiClient calls it (POST, the
 * $edgeHub token, `{pageSize, continuationLink, authChain}`), answered with ScopeResult's field names.
 */

async function gatewayWithChildren(count: number) {
  const hub = await IotHubEmulator.start();
  hub.createEdgeDevice('gw');
  hub.createModule('gw', 'filter');
  for (let i = 1; i <= count; i += 1) {
    hub.createDevice(`child-${i}`);
    hub.addChild('gw', `child-${i}`);
  }
  hub.createDevice('stranger');
  return hub;
}

t.test('every page, followed by its continuation link, lists the gateway, its children and modules once', async (t) => {
  const hub = await gatewayWithChildren(5);
  t.teardown(() => hub.stop());
  hub.createDevice('thumb', { type: 'selfSigned', primaryThumbprint: 'ab'.repeat(32) });
  hub.addChild('gw', 'thumb');
  hub.disableDevice('child-5');
  const devices: any[] = [];
  const modules: any[] = [];
  let continuationLink: string | null = null;
  let pages = 0;
  do {
    const answer = await scopeRequest(hub, 'gw', {
      pageSize: 2,
      ...(continuationLink ? { continuationLink } : {}),
      authChain: 'gw',
    });
    t.equal(answer.status, 200);
    t.ok(answer.body.devices.length + answer.body.modules.length <= 2, 'no page over pageSize');
    devices.push(...answer.body.devices);
    modules.push(...answer.body.modules);
    continuationLink = answer.body.continuationLink;
    pages += 1;
  } while (continuationLink !== null && pages < 20);
  t.equal(pages, 5, '10 identities in pages of 2');
  t.same(devices.map((d) => d.deviceId).sort(), ['child-1', 'child-2', 'child-3', 'child-4', 'child-5', 'gw', 'thumb']);
  t.same(modules.map((m) => `${m.deviceId}/${m.moduleId}`).sort(), ['gw/$edgeAgent', 'gw/$edgeHub', 'gw/filter']);
  const gw = devices.find((d) => d.deviceId === 'gw');
  t.match(gw, { capabilities: { iotEdge: true }, deviceScope: /^ms-azure-iot-edge:\/\/gw-/, parentScopes: [] });
  t.match(
    devices.find((d) => d.deviceId === 'child-1'),
    {
      generationId: String,
      etag: String,
      status: 'enabled',
      capabilities: { iotEdge: false },
      authentication: {
        type: 'sas',
        symmetricKey: { primaryKey: String, secondaryKey: String },
        x509Thumbprint: { primaryThumbprint: null, secondaryThumbprint: null },
      },
      deviceScope: gw.deviceScope,
      parentScopes: [gw.deviceScope],
    },
  );
  t.match(
    devices.find((d) => d.deviceId === 'child-5'),
    { status: 'disabled' },
    'a disabled child is listed as such',
  );
  t.match(
    devices.find((d) => d.deviceId === 'thumb'),
    {
      authentication: {
        type: 'selfSigned',
        x509Thumbprint: { primaryThumbprint: 'AB'.repeat(32) },
        symmetricKey: { primaryKey: null },
      },
    },
  );
  t.match(
    modules.find((m) => m.moduleId === 'filter'),
    { generationId: String, authentication: { type: 'sas' } },
  );
});

t.test('a bad token is 401, a bad request 400, and one identity is read on behalf of', async (t) => {
  const hub = await gatewayWithChildren(1);
  t.teardown(() => hub.stop());
  const body = { pageSize: 10, authChain: 'gw' };
  const deviceKey = hub.registry.device('gw')!.authentication.symmetricKey.primaryKey!;
  const wrongKey = sasToken(`${hub.hostName}/devices/gw/modules/$edgeHub`, deviceKey);
  t.equal((await scopeRequest(hub, 'gw', body, { authorization: wrongKey })).status, 401, "the device's key");
  const other = sasToken(`${hub.hostName}/devices/gw`, deviceKey);
  t.equal((await scopeRequest(hub, 'gw', body, { authorization: other })).status, 401, 'a token for the device');
  const unauthorized = await scopeRequest(hub, 'gw', body, { authorization: 'nothing' });
  t.match(unauthorized, { status: 401, body: { Message: /^ErrorCode:IotHubUnauthorizedAccess;/ } });
  t.equal((await scopeRequest(hub, 'gw', { pageSize: 10 })).status, 400, 'no authChain');
  t.equal((await scopeRequest(hub, 'gw', { ...body, continuationLink: 'forged' })).status, 400, 'a forged link');
  t.equal((await scopeRequest(hub, 'gw', { ...body, authChain: 'child-1;other' })).status, 401, 'a foreign chain');
  hub.disableDevice('gw');
  t.equal((await scopeRequest(hub, 'gw', body)).status, 401, 'a disabled gateway');
  hub.enableDevice('gw');

  const call = 'getDeviceAndModuleOnBehalfOf';
  const one = await scopeRequest(hub, 'gw', { targetDeviceId: 'child-1', authChain: 'gw' }, { call });
  t.match(one, { status: 200, body: { devices: [{ deviceId: 'child-1' }], modules: [], continuationLink: null } });
  const module = await scopeRequest(
    hub,
    'gw',
    { targetDeviceId: 'gw', targetModuleId: 'filter', authChain: 'gw' },
    { call },
  );
  t.match(module.body, { devices: [{ deviceId: 'gw' }], modules: [{ moduleId: 'filter' }] });
  const stranger = await scopeRequest(hub, 'gw', { targetDeviceId: 'stranger', authChain: 'gw' }, { call });
  t.equal(stranger.status, 404, 'a device outside the scope is not found');
});

t.test('a server-side cap on the page size still pages to the end', async (t) => {
  const hub = await IotHubEmulator.start({ scopePageSizeMax: 3 });
  t.teardown(() => hub.stop());
  hub.createEdgeDevice('gw');
  for (let i = 0; i < 7; i += 1) {
    hub.createDevice(`c${i}`);
    hub.addChild('gw', `c${i}`);
  }
  const sizes: number[] = [];
  const ids: string[] = [];
  let continuationLink: string | null = null;
  do {
    const link = continuationLink ? { continuationLink } : {};
    const page = await scopeRequest(hub, 'gw', { pageSize: 100, authChain: 'gw', ...link });
    sizes.push(page.body.devices.length + page.body.modules.length);
    ids.push(...page.body.devices.map((d: { deviceId: string }) => d.deviceId));
    continuationLink = page.body.continuationLink;
  } while (continuationLink !== null && sizes.length < 10);
  t.same(sizes, [3, 3, 3, 1], 'the hub sends fewer than asked; 8 devices and 2 modules in 4 pages');
  t.equal(new Set(ids).size, 8, 'each device once');
});
