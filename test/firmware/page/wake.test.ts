import { once } from 'node:events';
import net from 'node:net';
import { Aedes } from 'aedes';
import t from 'tap';
import { freePort } from '../../support/brokers.js';
import { until } from '../../support/hub-fixture.js';
import { login, pageRequest, startPageGateway } from '../../support/page-gateway.js';

const PASSWORD = 'correct horse battery';
/** The uplink's backoff: an hour, so only the page's wake can bring the link up within the test. */
const BACKOFF_MS = 3_600_000;
/** The link comes up well within this after the wake; the backoff would take about half an hour on average. */
const LINK_UP_AFTER_WAKE_MS = 15_000;

t.test('"Wake the uplink" connects at once instead of sleeping out the backoff', async (t) => {
  const port = await freePort();
  const gw = await startPageGateway(t, {
    password: PASSWORD,
    board: {
      uplink: {
        protocol: 'mqtt',
        url: `mqtt://127.0.0.1:${port}`,
        protocolVersion: 4,
        backoff: { baseMs: BACKOFF_MS, maxMs: BACKOFF_MS },
      },
    },
  });
  await until('the uplink backing off', () => gw.ops.report().link === 'backoff', LINK_UP_AFTER_WAKE_MS);
  // The broker appears only now, on the port the uplink points at: the link is back, the gateway sleeps on.
  const broker = await Aedes.createBroker();
  const server = net.createServer((socket) => broker.handle(socket)).listen(port, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    server.close();
  });
  const { cookie, csrf } = await login(gw, PASSWORD);
  const headers = { 'content-type': 'application/json', cookie, 'x-csrf-token': csrf };
  t.equal((await pageRequest(gw, 'POST', '/api/wake', { headers, body: '{}' })).status, 200);
  await until('the link up after the wake', () => gw.ops.report().link === 'up', LINK_UP_AFTER_WAKE_MS);
  t.equal(gw.ops.report().link, 'up');
});
