import t from 'tap';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { RingLog } from '../../../../firmware/store/log.js';
import { parseUplinkConfig } from '../../../../firmware/uplink/config.js';
import { RECORD_KEY } from '../../../../firmware/uplink/message.js';
import { startUplink, UPSTREAM_LANE_NAME } from '../../../../firmware/uplink/service.js';
import { IotHubEmulator } from '../../../support/iothub-emulator.js';
import { until } from '../../../support/edge-rig.js';
import { tempDir } from '../../../support/tmp.js';

/** Edge mode from a board.json uplink section: the whole uplink service, its status, its config errors. */

async function board(t: { teardown(fn: () => unknown): void }, hub: IotHubEmulator, edgeHub: string) {
  const dir = tempDir(t);
  await writeFile(join(dir, 'ca.pem'), hub.ca.cert);
  await writeFile(join(dir, 'edgehub-cs'), `${edgeHub}\n`);
  return dir;
}

t.test(
  'uplink.azure.edgeHubConnectionStringFile turns edge mode on: children go up as themselves, status shows the pool',
  async (t) => {
    const hub = await IotHubEmulator.start();
    t.teardown(() => hub.stop());
    const strings = hub.createEdgeDevice('gw-svc');
    for (const id of ['s1', 's2']) {
      hub.createDevice(id);
      hub.addChild('gw-svc', id);
    }
    const dir = await board(t, hub, strings.edgeHub);
    const config = parseUplinkConfig(
      {
        protocol: 'azure',
        connectionString: strings.device,
        caFile: 'ca.pem',
        azure: { edgeHubConnectionStringFile: 'edgehub-cs' },
        cloudConnectsPerSecMax: 50,
        backoff: { baseMs: 20, maxMs: 100 },
      },
      join(dir, 'board.json'),
    );
    const log = await RingLog.open({ dir: join(dir, 'data'), ttlSecs: 0 });
    t.teardown(() => log.close());
    const upstream = await log.lane(UPSTREAM_LANE_NAME);
    for (const who of ['s1', 's2', 'gw-svc', 'stranger']) {
      await upstream.append({ body: Buffer.from(who), properties: { [RECORD_KEY.deviceId]: who } });
    }
    const service = await startUplink({ config, gatewayId: 'gw-svc', log, dataDir: join(dir, 'data') });
    t.teardown(() => service.stop());
    await until('the children and the gateway delivered', () => hub.telemetry.length >= 3);
    t.same(hub.telemetry.map((r) => `${r.deviceId}:${r.body}`).sort(), ['gw-svc:gw-svc', 's1:s1', 's2:s2']);
    await until('the stranger dead-lettered', () => service.status().deadLetters.total === 1);
    const edge = service.status().edge!;
    t.match(edge, { connections: 2, refused: ['stranger'], parked: 0 }, 'status: the pool, the refused identity');
    t.equal(service.status().deadLetters.byReason['identity-refused'], 1);
  },
);

t.test('an $edgeHub connection string of another gateway is refused naming the file and field', async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const other = hub.createEdgeDevice('other-gw');
  const mine = hub.createEdgeDevice('gw-svc');
  const dir = await board(t, hub, other.edgeHub);
  const config = parseUplinkConfig(
    {
      protocol: 'azure',
      connectionString: mine.device,
      caFile: 'ca.pem',
      azure: { edgeHubConnectionStringFile: 'edgehub-cs' },
    },
    join(dir, 'board.json'),
  );
  const log = await RingLog.open({ dir: join(dir, 'data'), ttlSecs: 0 });
  t.teardown(() => log.close());
  await t.rejects(startUplink({ config, gatewayId: 'gw-svc', log, dataDir: join(dir, 'data') }), {
    message: /uplink\.azure\.edgeHubConnectionStringFile.*DeviceId=gw-svc.*DeviceId=other-gw/s,
  });
  await writeFile(join(dir, 'edgehub-cs'), mine.device);
  await t.rejects(startUplink({ config, gatewayId: 'gw-svc', log, dataDir: join(dir, 'data') }), {
    message: /uplink\.azure\.edgeHubConnectionStringFile.*ModuleId/s,
  });
});
