import t from 'tap';
import { mkdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  CACHE_FILE_NAME,
  CACHE_KEY_FILE_NAME,
  deriveDeviceKey,
} from '../../../../firmware/uplink/provisioning/cache.js';
import { dpsWorld, randomKey, received, until } from '../../../support/dps-fixture.js';

/**
 * Zero-touch provisioning end to end: the real provisioning SDK against the DPS emulator, then the real
 * azure-iot-device SDK against the IoT Hub emulator DPS assigned, through the uplink service and a ring log.
 */

t.test(
  'first boot provisions through a group enrollment and delivers; the second boot works from the cache ' +
    'with DPS gone',
  async (t) => {
    const world = await dpsWorld(t);
    const groupKey = randomKey();
    world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
    const keyFile = await world.file('group.key', `${groupKey}\n`);
    const provisioning = { registrationId: 'pump-0001', groupKeyFile: keyFile };

    const first = await world.boot(provisioning, 'pump-0001');
    await first.append(1, 20);
    await until('the backlog at hub A', () => received(world.hubA).size === 20);
    const status = first.service.status().provisioning!;
    t.match(status, {
      state: 'provisioned',
      source: 'dps',
      assignedHub: world.hubA.hostName,
      deviceId: 'pump-0001',
      attempts: 1,
      assignments: 1,
      refusal: null,
    });
    t.same(world.dps.requests, ['pump-0001'], 'one registration');
    await first.stop();

    const cachePath = path.join(world.dir, 'data', CACHE_FILE_NAME);
    t.equal((await stat(cachePath)).mode & 0o777, 0o600, "the cache is the service user's alone");
    const cache = await readFile(cachePath, 'utf8');
    t.notOk(cache.includes(deriveDeviceKey(groupKey, 'pump-0001')), 'the device key is not in the clear');
    t.match(JSON.parse(cache), { assignedHub: world.hubA.hostName, deviceId: 'pump-0001', sealedDeviceKey: String });

    await world.dps.stop();
    const second = await world.boot(provisioning, 'pump-0001');
    await second.append(21, 10);
    await until('the new records at hub A', () => received(world.hubA).size === 30);
    t.match(
      second.service.status().provisioning,
      { state: 'provisioned', source: 'cache', attempts: 0 },
      'no registration: DPS is not needed once provisioned',
    );
  },
);

t.test(
  'the hub refusing the identity (device moved to the other hub) re-provisions and the backlog follows',
  async (t) => {
    const world = await dpsWorld(t);
    const groupKey = randomKey();
    world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
    const provisioning = { registrationId: 'pump-0002', groupKeyFile: await world.file('group.key', groupKey) };
    const gateway = await world.boot(provisioning, 'pump-0002');
    await gateway.append(1, 10);
    await until('the first records at hub A', () => received(world.hubA).size === 10);

    // The operator re-homes the device: deleted on hub A (its connection dropped), assigned to hub B.
    world.dps.reassign('pump-0002', world.hubB.hostName);
    await gateway.append(11, 200);
    await until('everything at hub B', () => [...received(world.hubB)].filter((n) => n > 10).length === 200);
    const all = new Set([...received(world.hubA), ...received(world.hubB)]);
    t.equal(all.size, 210, 'no record lost across the move');
    t.match(gateway.service.status().provisioning, {
      state: 'provisioned',
      source: 'dps',
      assignedHub: world.hubB.hostName,
      attempts: 2,
      assignments: 2,
      reason: null,
    });
    t.same(world.dps.requests, ['pump-0002', 'pump-0002'], 'registered again once');
    t.ok(
      gateway.errors.some((e) => /refused pump-0002|registering with DPS again/.test(e.message)),
      'the refusal is reported',
    );
    await gateway.stop();

    await world.dps.stop();
    const again = await world.boot(provisioning, 'pump-0002');
    await again.append(211, 5);
    await until('the reboot delivers to hub B from the cache', () => received(world.hubB).size >= 205);
    t.match(again.service.status().provisioning, { source: 'cache', assignedHub: world.hubB.hostName });
  },
);

t.test(
  "X.509: a certificate from the group's CA provisions and connects; one from another CA is refused",
  async (t) => {
    const world = await dpsWorld(t);
    // The hub emulator trusts device certificates from its own CA, so the group's CA is hub A's.
    world.dps.addEnrollment({ kind: 'x509-group', name: 'x509-pumps', caCert: world.hubA.ca.cert });
    const good = await world.hubA.ca.issue('pump-x509');
    const gateway = await world.boot(
      {
        registrationId: 'pump-x509',
        certPath: await world.file('c.pem', good.cert),
        keyPath: await world.file('c.key', good.key),
      },
      'pump-x509',
    );
    await gateway.append(1, 5);
    await until('telemetry over the certificate', () => received(world.hubA).size === 5);
    t.match(gateway.service.status().provisioning, { state: 'provisioned', assignedHub: world.hubA.hostName });
    const cache = JSON.parse(await readFile(path.join(world.dir, 'data', CACHE_FILE_NAME), 'utf8')) as object;
    t.notOk('sealedDeviceKey' in cache, 'no key to keep: the certificate files stay where they are');
    await gateway.stop();

    const stranger = await world.hubB.ca.issue('pump-x509-b');
    const refused = await world.boot(
      {
        registrationId: 'pump-x509-b',
        certPath: await world.file('s.pem', stranger.cert),
        keyPath: await world.file('s.key', stranger.key),
      },
      'pump-x509-b',
    );
    await until('the refusal', () => refused.service.status().provisioning?.state === 'refused');
    t.match(refused.service.status().provisioning, { refusal: 'unauthorized' });
  },
);

t.test('a damaged cache, or one sealed under another key, is reported and the gateway registers again', async (t) => {
  const world = await dpsWorld(t);
  const groupKey = randomKey();
  world.dps.addEnrollment({ kind: 'symmetric-group', name: 'pumps', groupKey });
  const provisioning = { registrationId: 'pump-0008', groupKeyFile: await world.file('g', groupKey) };
  const dataDir = path.join(world.dir, 'data');
  await mkdir(dataDir);
  await writeFile(path.join(dataDir, CACHE_FILE_NAME), '{"format": 1, "idScope": ');
  const first = await world.boot(provisioning, 'pump-0008');
  await until('provisioned', () => first.service.status().provisioning?.state === 'provisioned');
  t.ok(
    first.errors.some((e) => e.message.includes(`${CACHE_FILE_NAME}: provisioning cache ignored`)),
    'reported',
  );
  await first.stop();

  // A restored backup: the cache came back, its key file did not.
  await rm(path.join(dataDir, CACHE_KEY_FILE_NAME));
  const second = await world.boot(provisioning, 'pump-0008');
  await second.append(1, 1);
  await until('delivered after registering again', () => received(world.hubA).size === 1);
  t.ok(
    second.errors.some((e) =>
      /provisioning cache ignored: sealed secret of "pump-0008" fails authentication/.test(e.message),
    ),
    'the foreign seal is reported',
  );
  t.equal(world.dps.requests.length, 2);
});
