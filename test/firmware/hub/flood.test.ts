import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { systemClock } from '../../../firmware/clock.js';
import { FDS_RESERVED_COUNT, fileDescriptorLimit, socketsMax } from '../../../firmware/hub/gate.js';
import { REFUSAL_SUMMARY_SOURCES_MAX, RefusalLog } from '../../../firmware/hub/refusal-log.js';
import { until } from '../../support/hub-fixture.js';
import { connectChild, hostileHub, publishOutcome } from '../../support/hostile-hub.js';

/** An unauthenticated connection flood is capped, times out, and does not reach the children already served. */

/** Opens `count` idle TCP connections from `localAddress` (any 127.x address is loopback on Linux). */
async function idleSockets(port: number, localAddress: string, count: number) {
  const sockets = await Promise.all(
    Array.from({ length: count }, async () => {
      const socket = net.connect({ port, host: '127.0.0.1', localAddress });
      socket.on('error', () => {});
      await once(socket, 'connect');
      return socket;
    }),
  );
  let closed = 0;
  for (const s of sockets) s.once('close', () => (closed += 1));
  return { sockets, closed: () => closed, destroy: () => sockets.forEach((s) => s.destroy()) };
}

t.test(
  'idle connections past the pending caps are refused at once and the rest time out; children keep publishing',
  async (t) => {
    const h = await hostileHub(t, {
      hub: { pendingConnectionsMax: 30, pendingPerAddressMax: 20, connectTimeoutSecs: 2 },
    });
    const served = await connectChild(h, 'child-0');
    t.teardown(() => served.endAsync(true));

    const flood = await idleSockets(h.port, '127.0.0.2', 100);
    t.teardown(flood.destroy);
    await until('the sockets over the per-address cap closed', () => flood.closed() === 80);
    t.equal(h.hub.status().refusals['pending-per-address'], 80, 'counted as pending-per-address');
    const spread = await Promise.all(Array.from({ length: 20 }, (_, i) => idleSockets(h.port, `127.0.1.${i + 1}`, 1)));
    t.teardown(() => spread.forEach((s) => s.destroy()));
    await until('the sockets over the pending cap closed', () => spread.reduce((n, s) => n + s.closed(), 0) === 10);
    t.equal(h.hub.status().refusals['pending-max'], 10, 'counted as pending-max');

    let acked = 0;
    while (acked < 20 && (await publishOutcome(served, 'devices/child-0/messages/events/', `m${acked}`, 1)) === 'acked')
      acked += 1;
    t.equal(acked, 20, 'the child connected before the flood gets every PUBACK during it');

    await until(
      'the idle connections timed out',
      () => flood.closed() === 100 && spread.every((s) => s.closed() === 1),
      15_000,
    );
    t.equal(
      h.hub.status().refusals['connect-timeout'],
      30,
      'each idle connection closed after connectTimeoutSecs, counted',
    );
    t.equal(h.hub.status().refusals.protocol ?? 0, 0, 'and counted once: not also as a protocol error');
    const late = await connectChild(h, 'child-1', '127.0.0.2');
    t.teardown(() => late.endAsync(true));
    t.ok(late.connected, 'once they are gone, a child from the flooding address connects');
    t.match(
      h.errors[0]?.message,
      /^hub refused 1 .*pending-per-address 1 \(from 127\.0\.0\.2\).*hub\.pendingPerAddressMax/,
      'the first refusal is logged at once, naming the address and the limit',
    );
  },
);

t.test('sockets stay below the file descriptor limit, leaving a reserve for the store and notifications', async (t) => {
  const limits = { clientsMax: 100, pendingConnectionsMax: 128, pendingPerAddressMax: 32, connectTimeoutSecs: 5 };
  t.equal(socketsMax(limits, 4_096), 228, 'clients and pending connections, when the limit is far above');
  t.equal(socketsMax(limits, 400), 400 - FDS_RESERVED_COUNT, 'the limit less the reserve, when it is near');
  t.equal(
    fileDescriptorLimit(
      'Limit  Soft Limit  Hard Limit  Units\n' +
        'Max open files            4096                 524288               files\n',
    ),
    4_096,
  );
  t.equal(
    fileDescriptorLimit('Max open files            unlimited            unlimited            files\n'),
    Number.MAX_SAFE_INTEGER,
  );
  t.ok(fileDescriptorLimit() > 0, "this process's own limit is read");
});

t.test('refusal summaries: the first at once, then one per interval naming the busiest sources', async (t) => {
  const summaries: string[] = [];
  const log = new RefusalLog<'signature' | 'connect-timeout'>(
    systemClock,
    (s) => summaries.push(s),
    { 'connect-timeout': 'raise hub.connectTimeoutSecs' },
    200,
  );
  t.teardown(() => log.stop());
  log.count('signature', { clientId: 'child-a', address: '10.0.0.7' });
  t.same(
    summaries,
    ['hub refused 1 (by reason and source): signature 1 ("child-a" from 10.0.0.7)'],
    'the first refusal is reported at once',
  );
  for (let i = 0; i < 5; i += 1) log.count('signature', { clientId: 'child-b', address: '10.0.0.8' });
  // More distinct sources than REFUSAL_SOURCES_MAX: those past it are counted, not remembered.
  for (let i = 0; i < 300; i += 1) log.count('connect-timeout', { address: `10.0.${i % 2}.${i}` });
  t.equal(summaries.length, 1, 'the rest wait for the interval');
  await until('the second summary', () => summaries.length === 2);
  t.match(
    summaries[1],
    new RegExp(
      /^hub refused 305 \(by reason and source\): /.source +
        /signature 5 \("child-b" from 10\.0\.0\.8\), connect-timeout 1 \(from 10\.0\.0\.0\), /.source,
    ),
  );
  t.match(
    summaries[1],
    /, others 293 \(connect-timeout: raise hub\.connectTimeoutSecs\)$/,
    `at most ${REFUSAL_SUMMARY_SOURCES_MAX} sources named, the rest counted, the limit hinted`,
  );
  t.equal(log.totals.get('connect-timeout'), 300, 'totals count everything');
});
