import t from 'tap';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { CACHE_FILE_NAME, deriveDeviceKey } from '../../../../firmware/uplink/provisioning/cache.js';
import { dpsWorld, randomKey, received, until } from '../../../support/dps-fixture.js';

/**
 * Zero-touch provisioning end to end: the real provisioning SDK against the DPS emulator, then the real
 * azure-iot-device SDK against the IoT Hub emulator DPS assigned, through the uplink service and a ring log.
 */

t.test('first boot provisions through a group enrollment and delivers; the second boot works from the cache ' +
  'with DPS gone', async (t) => {
  const world = await dpsWorld(t);
  const groupKey = randomKey();
  world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
  const keyFile = await world.file('group.key', `${groupKey}\n`);
  const provisioning = { registrationId: 'pump-0001', groupKeyFile: keyFile };

  const first = await world.boot(provisioning, 'pump-0001');
  await first.append(1, 20);
  await until('the backlog at hub A', () => received(world.hubA).size === 20);
  const status = first.service.status().provisioning!;
  t.match(status, { state: 'provisioned', source: 'dps', assignedHub: world.hubA.hostName, deviceId: 'pump-0001',
    attempts: 1, assignments: 1, refusal: null });
  t.same(world.dps.requests, ['pump-0001'], 'one registration');
  await first.stop();

  const cachePath = path.join(world.dir, 'data', CACHE_FILE_NAME);
  t.equal((await stat(cachePath)).mode & 0o777, 0o600, 'the cache is the service user\'s alone');
  const cache = await readFile(cachePath, 'utf8');
  t.notOk(cache.includes(deriveDeviceKey(groupKey, 'pump-0001')), 'the device key is not in the clear');
  t.match(JSON.parse(cache), { assignedHub: world.hubA.hostName, deviceId: 'pump-0001', sealedDeviceKey: String });

  await world.dps.stop();
  const second = await world.boot(provisioning, 'pump-0001');
  await second.append(21, 10);
  await until('the new records at hub A', () => received(world.hubA).size === 30);
  t.match(second.service.status().provisioning, { state: 'provisioned', source: 'cache', attempts: 0 },
    'no registration: DPS is not needed once provisioned');
});
