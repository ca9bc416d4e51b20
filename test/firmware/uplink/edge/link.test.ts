import t from 'tap';
import tls from 'node:tls';
import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { Aedes } from 'aedes';
import { systemClock } from '../../../../firmware/clock.js';
import { createIdentityLink } from '../../../../firmware/uplink/edge/link.js';
import { ConnectionPool } from '../../../../firmware/uplink/edge/pool.js';
import { createTestCa } from '../../../support/tls-certs.js';
import { bodiesOf, edgeRig, until } from '../../../support/edge-rig.js';

/**
 * The on-behalf-of link with the real SDK: what goes in the CONNECT, read by a plain MQTT broker over TLS
 * (the emulator judges the same fields but does not show them), and renewal before the token runs out.
 */

interface Connect {
  clientId: string;
  username: string;
  password: string;
  atMs: number;
}

async function capturingBroker(t: {
  teardown(fn: () => unknown): void;
}): Promise<{ port: number; connects: Connect[]; ca: string }> {
  const ca = await createTestCa();
  t.teardown(() => ca.dispose());
  const broker = await Aedes.createBroker();
  const connects: Connect[] = [];
  broker.authenticate = (client, username, password, done) => {
    connects.push({
      clientId: client.id,
      username: username ?? '',
      password: password?.toString() ?? '',
      atMs: Date.now(),
    });
    done(null, true);
  };
  const server = tls.createServer(await ca.issue('localhost', ['localhost']), (socket) => broker.handle(socket));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    server.close();
  });
  return { port: (server.address() as { port: number }).port, connects, ca: ca.cert };
}

t.test('CONNECT names the child, carries the auth chain, and a token for the $edgeHub module', async (t) => {
  const { port, connects, ca } = await capturingBroker(t);
  const key = Buffer.from('edgehub-key-for-the-test').toString('base64');
  const credentials = { hostName: `localhost:${port}`, gatewayId: 'gw', key };
  for (const identity of ['c1', 'gw/filter', 'c2/mod']) {
    const link = createIdentityLink({ identity, credentials, ca, wallMs: () => Date.now() });
    await link.transport.connect();
    await link.transport.close();
  }
  t.same(
    connects.map((c) => c.clientId),
    ['c1', 'gw/filter', 'c2/mod'],
    'client id: the identity itself',
  );
  const chains = connects.map((c) =>
    new URLSearchParams(c.username.slice(c.username.indexOf('/?') + 2)).get('auth-chain'),
  );
  t.same(chains, ['c1;gw', 'gw/filter;gw', 'c2/mod;c2;gw'], 'auth-chain: target first, the gateway last');
  t.match(connects[0]!.username, new RegExp(`^localhost:${port}/c1/\\?api-version=`), 'user name: hub/identity/?...');
  const fields = new URLSearchParams(connects[0]!.password.replace(/^SharedAccessSignature /, ''));
  const resource = `localhost:${port}/devices/gw/modules/$edgeHub`;
  t.equal(fields.get('sr'), resource, 'the token names the $edgeHub module');
  const expected = createHmac('sha256', Buffer.from(key, 'base64'))
    .update(`${encodeURIComponent(resource)}\n${fields.get('se')}`)
    .digest('base64');
  t.equal(fields.get('sig'), expected, 'signed with the $edgeHub key');
  t.ok(Number(fields.get('se')) * 1000 > Date.now() + 3_000_000, 'valid for about an hour');
});

t.test('the pool renews a busy link with a fresh token before the old one expires', async (t) => {
  const { port, connects, ca } = await capturingBroker(t);
  const credentials = { hostName: `localhost:${port}`, gatewayId: 'gw', key: Buffer.from('k').toString('base64') };
  // Long against the timers of a loaded machine: renewal is due 1.5 s before expiry.
  const tokenTtlSecs = 10;
  const pool = new ConnectionPool({
    clock: systemClock,
    connectTimeoutMs: 5_000,
    onChange: () => {},
    busy: () => true,
    reportError: () => {},
    createLink: (identity) => createIdentityLink({ identity, credentials, ca, wallMs: () => Date.now(), tokenTtlSecs }),
  });
  t.teardown(() => pool.close());
  pool.want('c1');
  await until('a renewal', () => connects.length >= 2, 20_000);
  for (let i = 1; i < connects.length; i += 1) {
    const expiresAtMs = Number(new URLSearchParams(connects[i - 1]!.password.slice(22)).get('se')) * 1000;
    t.ok(connects[i]!.atMs < expiresAtMs, `connect ${i + 1} came before token ${i} expired`);
    t.ok(connects[i]!.atMs - connects[i - 1]!.atMs >= tokenTtlSecs * 500, `and not before half its lifetime`);
  }
});

t.test('a long link is renewed with a fresh token before the old one expires, without losing a message', async (t) => {
  const tokenTtlSecs = 6;
  const rig = await edgeRig(t, { children: ['c1'], tokenTtlSecs });
  rig.start();
  const startedAt = Date.now();
  let sent = 0;
  // A message every 100 ms for two token lifetimes, so the link is never idle when its renewal comes due.
  while (Date.now() - startedAt < 2 * tokenTtlSecs * 1000 + 500) {
    sent += 1;
    await rig.append(['c1']);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  await until('every message', () => new Set(bodiesOf(rig.hub, 'c1')).size === sent);
  const bodies = bodiesOf(rig.hub, 'c1');
  t.same(
    [...new Set(bodies)],
    Array.from({ length: sent }, (_, i) => i + 1),
    'all, in stored order',
  );
  t.ok(
    rig.hub.operations('c1', 'connect') >= 2,
    `reconnected with new tokens (${rig.hub.operations('c1', 'connect')} connects)`,
  );
  t.same(
    rig.errors.filter((e) => /lost/.test(e)),
    [],
    'never dropped by the hub for an expired token',
  );
});
