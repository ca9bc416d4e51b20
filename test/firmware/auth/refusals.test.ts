import t, { type Test } from 'tap';
import path from 'node:path';
import { readdir, readFile, stat } from 'node:fs/promises';
import type { MqttClient } from 'mqtt';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { makeSasToken } from '../../../firmware/auth/sas.js';
import { HUB_HOST, mqttChild, publishRefused, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** Offline authentication from the identity cache, synced from a retained scope document (mqtt uplink). */

const keyA = newKey();
const keyB = newKey();
const children = [
  { deviceId: 'child-a', key: keyA },
  { deviceId: 'child-b', key: keyB },
  { deviceId: 'child-off', key: newKey(), status: 'disabled' as const },
];

async function setup(t: Test, hubOptions: Record<string, unknown> = {}) {
  const dir = tempDir(t, 'outpost-auth-');
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, children));
  const start = () =>
    startHub({
      config: { hub: { tcp: { port: 0 }, tls: false, authFailuresMax: 1_000, ...hubOptions } },
      gatewayId: 'gw-1',
      log,
      dataDir: path.join(dir, 'data'),
      scopeBroker: { url: broker.url },
    });
  const hub = await start();
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  return { dir, broker, hub, port: hub.status().ports.tcp!, start };
}

async function refused(t: Test, attempt: Promise<MqttClient>, what: string): Promise<void> {
  await t.rejects(
    attempt.then((c) => c.endAsync(true)),
    /Not authorized|Server unavailable/,
    what,
  );
}

t.test('refusals: bad signature, expired, wrong audience, unknown, disabled; counted by reason', async (t) => {
  const { hub, port } = await setup(t);
  const good = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
  t.ok(good.connected, 'a valid SAS token connects');
  await good.endAsync();
  await refused(t, mqttChild(port, 'child-a', sasPassword('child-a', keyB)), 'signed with another key');
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-a', keyA, { expirySecs: Math.floor(Date.now() / 1000) - 3_600 })),
    'expired beyond the skew',
  );
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-a', keyA, { host: 'evil.example.net' }), {
      host: 'evil.example.net',
    }),
    'audience not this gateway or hub',
  );
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-a', keyA, { host: 'evil.example.net' })),
    'token for another host, username for ours',
  );
  await refused(t, mqttChild(port, 'ghost', sasPassword('ghost', keyA)), 'unknown device');
  await refused(t, mqttChild(port, 'child-off', sasPassword('child-off', children[2].key)), 'disabled device');
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-b', keyB), { clientId: 'child-a' }),
    "another device's token",
  );
  await refused(t, mqttChild(port, 'child-a', 'SharedAccessSignature sr=x&sig=y'), 'malformed token');
  const within = await mqttChild(
    port,
    'child-a',
    sasPassword('child-a', keyA, { expirySecs: Math.floor(Date.now() / 1000) - 60 }),
  );
  t.ok(within.connected, 'expired by less than the skew allowance still connects');
  await within.endAsync();
  t.match(hub.status().refusals, {
    signature: 1,
    expired: 1,
    audience: 3,
    'unknown-device': 1,
    disabled: 1,
    malformed: 1,
  });
});

t.test('SAS: lifetime capped, no policy name, device id case-sensitive (the host not)', async (t) => {
  const { hub, port } = await setup(t, { tokenLifetimeSecsMax: 7_200 });
  const nowSecs = Math.floor(Date.now() / 1000);
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-a', keyA, { expirySecs: 9_999_999_999 })),
    'se=9999999999',
  );
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-a', keyA, { expirySecs: nowSecs + 7_200 + 3_600 })),
    'past the cap',
  );
  const capped = await mqttChild(port, 'child-a', sasPassword('child-a', keyA, { expirySecs: nowSecs + 7_000 }));
  t.ok(capped.connected, 'a token within the cap connects');
  await capped.endAsync();
  await refused(
    t,
    mqttChild(port, 'child-a', `${sasPassword('child-a', keyA)}&skn=iothubowner`),
    'a token naming a policy (skn)',
  );
  const upper = makeSasToken(`${HUB_HOST}/devices/CHILD-A`, keyA, nowSecs + 600);
  await refused(t, mqttChild(port, 'child-a', upper), "a token for CHILD-A signed with child-a's key");
  const upperHost = makeSasToken(`${HUB_HOST.toUpperCase()}/devices/child-a`, keyA, nowSecs + 600);
  const hostCase = await mqttChild(port, 'child-a', upperHost);
  t.ok(hostCase.connected, 'the host name is compared case-insensitively');
  await hostCase.endAsync();
  t.match(hub.status().refusals, { 'token-lifetime': 2, malformed: 1, audience: 1 });
});

t.test("ACL: another device's topics are refused; revocation drops a live connection within 1 s", async (t) => {
  const { hub, port, broker } = await setup(t);
  const a = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
  const own = await a.subscribeAsync('devices/child-a/messages/devicebound/#', { qos: 1 });
  t.same(
    own.map((g) => g.qos),
    [1],
    'its own cloud-to-device topic is granted',
  );
  await t.rejects(
    a.subscribeAsync('devices/child-b/messages/devicebound/#', { qos: 1 }),
    /Subscribe error/,
    "another device's topic gets a failure SUBACK",
  );
  t.equal(hub.status().refusals['subscribe-acl'], 1);
  await publishRefused(a, 'devices/child-b/messages/events/', 'spoof');
  t.equal(hub.status().refusals.acl, 1, 'publishing as another device closes the connection, no PUBACK');
  await a.endAsync(true);

  const b = await mqttChild(port, 'child-b', sasPassword('child-b', keyB));
  const dropped = new Promise<number>((resolve) => b.once('close', () => resolve(Date.now())));
  await publishScope(
    { url: broker.url },
    'gw-1',
    scopeDocument(
      'gw-1',
      2,
      children.filter((c) => c.deviceId !== 'child-b'),
    ),
  );
  const startedMs = Date.now();
  await hub.refreshIdentities();
  t.ok((await dropped) - startedMs < 1_000, 'child-b dropped within 1 s of the sync that removed it');
  await b.endAsync(true);
  await refused(t, mqttChild(port, 'child-b', sasPassword('child-b', keyB)), 'a removed device cannot come back');
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, children));
  await hub.refreshIdentities();
  t.equal(hub.status().identities.scopeVersion, 2, 'an older scope document is ignored');
});

t.test('failed attempts are rate-limited per (client id, address)', async (t) => {
  const { hub, port } = await setup(t, { authFailuresMax: 3 });
  for (let i = 0; i < 3; i += 1)
    await refused(t, mqttChild(port, 'child-a', sasPassword('child-a', keyB)), `failure ${i + 1}`);
  await refused(
    t,
    mqttChild(port, 'child-a', sasPassword('child-a', keyA)),
    'even a good token is refused while limited',
  );
  t.equal(hub.status().refusals['rate-limited'], 1);
});

t.test('restart offline keeps the identity cache; keys sealed; key file 0600, identities/ twins/ 0700', async (t) => {
  const { hub, dir, broker, start } = await setup(t);
  await hub.stop();
  await broker.stop().catch(() => {});
  const again = await start();
  t.teardown(() => again.stop());
  t.equal(again.status().identities.devices, 3, 'identities loaded from disk with the cloud gone');
  const child = await mqttChild(again.status().ports.tcp!, 'child-a', sasPassword('child-a', keyA));
  t.ok(child.connected, 'child authenticates offline after the restart');
  await child.endAsync();
  t.equal((await stat(path.join(dir, 'data', 'identity.key'))).mode & 0o777, 0o600, 'key file mode 0600');
  for (const sub of ['identities', 'twins']) {
    t.equal((await stat(path.join(dir, 'data', sub))).mode & 0o777, 0o700, `${sub}/ is 0700 whatever the umask`);
  }
  const files = await readdir(path.join(dir, 'data', 'identities'));
  const text = (await Promise.all(files.map((f) => readFile(path.join(dir, 'data', 'identities', f), 'utf8')))).join(
    '\n',
  );
  t.ok(text.includes('child-a'), 'identity records on disk');
  t.notOk(text.includes(keyA) || text.includes(keyB), 'no device key in clear text on disk');
});
