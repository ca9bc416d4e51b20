import t, { type Test } from 'tap';
import path from 'node:path';
import { readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { mqttChild, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** A damaged identity cache or a missing key file never stops the gateway; the next scope sync repairs it. */

const keyA = newKey();
const keyB = newKey();
const children = [
  { deviceId: 'child-a', key: keyA },
  { deviceId: 'child-b', key: keyB },
];

async function setup(t: Test) {
  const dir = tempDir(t, 'outpost-cache-');
  const dataDir = path.join(dir, 'data');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, children));
  const errors: string[] = [];
  const start = async () => {
    const hub = await startHub({
      config: { hub: { tcp: { port: 0 }, tls: false } },
      gatewayId: 'gw-1',
      log,
      dataDir,
      scopeBroker: { url: broker.url },
      onError: (err) => errors.push(err.message),
    });
    t.teardown(() => hub.stop());
    return hub;
  };
  const first = await start();
  await first.refreshIdentities();
  await first.stop();
  return { dataDir, start, errors };
}

async function connects(port: number, deviceId: string, key: string): Promise<boolean> {
  return mqttChild(port, deviceId, sasPassword(deviceId, key)).then(
    (c) => c.endAsync().then(() => true),
    () => false,
  );
}

/** Rewrites child-a's record so it still parses but its sealed secret fails authentication (bit rot). */
async function damageRecord(dataDir: string): Promise<void> {
  const dir = path.join(dataDir, 'identities');
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    const record = JSON.parse(await readFile(file, 'utf8')) as { key: string; value: { sealedAuth: string } };
    if (record.key !== 'device:child-a') continue;
    const sealed = Buffer.from(record.value.sealedAuth, 'base64');
    sealed[sealed.length - 1] ^= 0x01;
    record.value.sealedAuth = sealed.toString('base64');
    await writeFile(file, JSON.stringify(record));
    return;
  }
  throw new Error('no record for child-a');
}

t.test('a record that fails to unseal is skipped and reported, the others load; a sync rewrites it', async (t) => {
  const { dataDir, start, errors } = await setup(t);
  await damageRecord(dataDir);
  const hub = await start();
  t.match(
    errors,
    [/identities: 1 damaged identity record\(s\) skipped \(child-a\)/],
    'reported, naming the directory and device',
  );
  const port = hub.status().ports.tcp!;
  t.equal(hub.status().identities.devices, 1, 'the undamaged record loaded');
  t.ok(await connects(port, 'child-b', keyB), 'child-b authenticates offline');
  t.notOk(await connects(port, 'child-a', keyA), 'child-a is refused until the next sync');
  await hub.refreshIdentities();
  t.ok(await connects(port, 'child-a', keyA), 'the sync rewrote child-a');
});

t.test('identity.key missing beside the cache (a restored backup): the cache is dropped and refilled', async (t) => {
  const { dataDir, start, errors } = await setup(t);
  await rm(path.join(dataDir, 'identity.key'));
  const hub = await start();
  t.match(errors, [/another key than .*identity\.key \(key file missing or replaced\): identity cache dropped/]);
  t.equal(hub.status().identities.devices, 0, 'nothing usable was kept');
  t.equal(
    hub.status().identities.scopeVersion,
    -1,
    'the scope version is forgotten, so the same document applies again',
  );
  await hub.refreshIdentities();
  t.ok(await connects(hub.status().ports.tcp!, 'child-a', keyA), 'after the sync child-a authenticates');
  await hub.stop();
  errors.length = 0;
  const again = await start();
  t.same(errors, [], 'the refilled cache loads cleanly under the new key');
  t.equal(again.status().identities.devices, 2);
});

t.test('a truncated key file is moved aside and replaced, the gateway starts', async (t) => {
  const { dataDir, start, errors } = await setup(t);
  await writeFile(path.join(dataDir, 'identity.key'), 'short');
  const hub = await start();
  t.match(errors, [
    /key file .*identity\.key must hold 32 bytes, has 5: moved to .*identity\.key\.damaged/,
    /identity cache dropped/,
  ]);
  t.equal((await stat(path.join(dataDir, 'identity.key'))).size, 32, 'a new key');
  await hub.refreshIdentities();
  t.ok(await connects(hub.status().ports.tcp!, 'child-b', keyB));
});
