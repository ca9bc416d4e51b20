import { symlinkSync, writeFileSync } from 'node:fs';
import { warningsOf } from '../support/warnings.js';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { loadBoard } from '../../firmware/board/board.js';
import type { LoadedBoard } from '../../firmware/config/types.js';
import {
  CLOUD_IDENTITY_UNUSED_WARNING,
  gatewayDevicesOf,
  marksAsGateway,
  warnUnusedCloudIdentity,
} from '../../firmware/gateway-devices.js';
import { parseUplinkConfig } from '../../firmware/uplink/config.js';
import { tempDir } from '../support/tmp.js';

/** cloudIdentity on the gateway's own devices: which go up as the gateway, and the warning outside edge mode. */

const BOARDS_DIR = new URL('../../boards', import.meta.url).pathname;
const CONNECTION = 'HostName=hub.example;DeviceId=gw;SharedAccessKey=a2V5';
const DEVICE_MODE = { protocol: 'azure', connectionString: CONNECTION };
const EDGE_MODE = { ...DEVICE_MODE, azure: { mode: 'edge', edgeHubConnectionStringFile: 'edgehub.cs' } };

async function simBoard(t: Test, uplink: Record<string, unknown>): Promise<LoadedBoard> {
  const dir = tempDir(t);
  symlinkSync(BOARDS_DIR, join(dir, 'boards'));
  const devices = { env: { cloudIdentity: 'own' }, climate: { cloudIdentity: 'gateway' } };
  writeFileSync(
    join(dir, 'board.json'),
    JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw' }, uplink, devices }),
  );
  return loadBoard(join(dir, 'board.json'));
}

async function unusedWarningsOf(fn: () => void): Promise<Error[]> {
  const seen = await warningsOf(fn);
  return seen.filter((w) => (w as NodeJS.ErrnoException).code === CLOUD_IDENTITY_UNUSED_WARNING);
}

t.test('the drivers without an identity of their own go as the gateway, disabled ones too', async (t) => {
  const board = await simBoard(t, EDGE_MODE);
  const devices = gatewayDevicesOf(board);
  t.notOk(devices.has('env'), '"own": not the gateway');
  for (const id of ['climate', 'adc', 'meter']) t.ok(devices.has(id), `${id} as the gateway`);
  const disabled = board.devices.filter((d) => d.status === 'disabled').map((d) => d.id);
  for (const id of disabled) t.ok(devices.has(id), `${id} (disabled) as the gateway`);
  const marks = marksAsGateway(board);
  t.equal(marks('env'), false, '"own" readings are not marked');
  t.equal(marks('climate'), true, 'the others are');
});

t.test('"own" outside edge mode: a start-up warning naming file and field; none in edge mode', async (t) => {
  const device = await simBoard(t, DEVICE_MODE);
  const warnings = await unusedWarningsOf(() =>
    warnUnusedCloudIdentity(device, parseUplinkConfig(device.uplink, device.file)),
  );
  t.equal(warnings.length, 1, 'one warning, for the one "own" device');
  t.match(warnings[0]!.message, `${device.file}: $.devices.env.cloudIdentity: "own" applies in edge mode only`);
  t.match(warnings[0]!.message, /device mode it changes nothing: the readings of "env" are the gateway's/);
  const none = await simBoard(t, { protocol: 'none' });
  t.equal(
    (await unusedWarningsOf(() => warnUnusedCloudIdentity(none, parseUplinkConfig(none.uplink, none.file)))).length,
    1,
  );
  const edge = await simBoard(t, EDGE_MODE);
  t.same(await unusedWarningsOf(() => warnUnusedCloudIdentity(edge, parseUplinkConfig(edge.uplink, edge.file))), []);
});
