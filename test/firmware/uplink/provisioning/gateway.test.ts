import t from 'tap';
import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { bundleGateway, startGateway } from '../../../support/gateway-process.js';
import { dpsWorld, randomKey, until } from '../../../support/dps-fixture.js';
import { tempDir } from '../../../support/tmp.js';

/**
 * The whole gateway process (main.ts, runtime.ts) on a fleet board file: no gateway id, no connection string,
 * only the DPS enrollment. At first start it registers, and the sim board's own devices' readings arrive at
 * the hub DPS assigned, under the registration id as device id.
 */

const ROOT = new URL('../../../../', import.meta.url).pathname;

t.test('a fleet board with only an enrollment provisions at first start and its readings reach the hub', async (t) => {
  const world = await dpsWorld(t);
  const groupKey = randomKey();
  world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
  await world.file('group.key', groupKey);
  symlinkSync(path.join(ROOT, 'boards'), path.join(world.dir, 'boards'));
  const board = path.join(world.dir, 'board.json');
  writeFileSync(
    board,
    JSON.stringify({
      board: 'sim',
      uplink: {
        protocol: 'azure',
        caFile: 'ca.pem',
        backoff: { baseMs: 50, maxMs: 500 },
        provisioning: {
          globalEndpoint: world.dps.endpoint,
          idScope: world.dps.idScope,
          registrationId: 'pump-gw',
          groupKeyFile: 'group.key',
        },
      },
    }),
  );
  const gw = startGateway(await bundleGateway(tempDir(t)), ['run', '--board', board], {
    OUTPOST_DATA_DIR: path.join(world.dir, 'gw-data'),
    OUTPOST_HUB_PORT: '0',
  });
  t.teardown(() => gw.proc.kill('SIGKILL'));
  await until('a reading at hub A', () => world.hubA.telemetry.some((r) => r.deviceId === 'pump-gw'), 60_000);
  t.same(world.dps.requests, ['pump-gw'], 'registered once');
  gw.proc.kill('SIGTERM');
  t.equal(await gw.exited(), 0, 'stops cleanly');
});
