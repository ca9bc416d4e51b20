import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { FaultProxy } from '../../support/fault-proxy.js';
import { until } from '../../support/until.js';

/** The fault proxy is the "link" in every uplink test, so its faults must be the ones it claims. */

/** A server that echoes, and remembers every byte it was sent. */
async function echoServer(t: Test): Promise<{ port: number; received: () => string }> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('data', (d) => {
      received += d.toString();
      socket.write(d);
    });
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.teardown(async () => {
    for (const s of sockets) s.destroy();
    server.close();
    await once(server, 'close');
  });
  return { port: (server.address() as net.AddressInfo).port, received: () => received };
}

async function proxyFor(t: Test, targetPort: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetPort });
  t.teardown(() => proxy.close());
  return proxy;
}

interface Probe {
  socket: net.Socket;
  text: () => string;
  ended: () => string | null;
}

async function connect(t: Test, port: number): Promise<Probe> {
  const socket = net.connect(port, '127.0.0.1');
  let text = '';
  let ended: string | null = null;
  socket.on('data', (d) => (text += d.toString()));
  socket.on('error', (err: NodeJS.ErrnoException) => (ended = err.code ?? 'error'));
  socket.on('close', () => (ended ??= 'close'));
  t.teardown(() => void socket.destroy());
  await once(socket, 'connect');
  return { socket, text: () => text, ended: () => ended };
}

t.test('pass forwards both ways', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const probe = await connect(t, proxy.port);
  probe.socket.write('hello');
  await until('echo', () => probe.text() === 'hello');
  t.equal(echo.received(), 'hello');
  t.equal(proxy.connectionCount, 1);
});

t.test('cut resets every open connection and the next one works', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const a = await connect(t, proxy.port);
  const b = await connect(t, proxy.port);
  a.socket.write('x');
  await until('echo', () => a.text() === 'x');
  proxy.cut();
  await until('both closed', () => a.ended() !== null && b.ended() !== null);
  t.equal(a.ended(), 'ECONNRESET', 'the client sees a reset, as after a modem drop');
  t.equal(proxy.connectionCount, 0);
  const c = await connect(t, proxy.port);
  c.socket.write('again');
  await until('echo after cut', () => c.text() === 'again');
});

t.test('cut with reset: false closes with FIN', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const a = await connect(t, proxy.port);
  proxy.cut({ reset: false });
  await until('closed', () => a.ended() !== null);
  t.equal(a.ended(), 'close');
});

t.test('blackhole forwards nothing and closes nothing, then TCP delivers late', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const open = await connect(t, proxy.port);
  proxy.blackhole();
  open.socket.write('lost?');
  const late = await connect(t, proxy.port);
  late.socket.write('new');
  await sleep(300);
  t.equal(echo.received(), '', 'the broker saw nothing');
  t.equal(open.text(), '', 'the client got nothing back');
  t.equal(open.ended(), null, 'no FIN or RST on the open connection');
  t.equal(late.ended(), null, 'a new connection hangs rather than failing');
  proxy.pass();
  await until('delivery after the link returns', () => open.text() === 'lost?' && late.text() === 'new');
});

t.test('strand leaves the open connections dead for good, new ones pass', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const before = await connect(t, proxy.port);
  proxy.blackhole();
  before.socket.write('held');
  const during = await connect(t, proxy.port);
  during.socket.write('stuck');
  proxy.strand();
  proxy.pass();
  const after = await connect(t, proxy.port);
  after.socket.write('new');
  // Held bytes go out as soon as pass() wakes the forwarders, before a new connection's round trip ends.
  await until('the new connection echoed', () => after.text() === 'new');
  t.equal(echo.received(), 'new', 'nothing from a stranded connection reached the broker');
  t.equal(before.text() + during.text(), '', 'nothing came back on them');
  t.equal(before.ended() ?? during.ended(), null, 'and neither was closed');
  proxy.cut();
  await until('stranded ones closed by cut', () => before.ended() !== null && during.ended() !== null);
});

t.test('refuse resets new connections and leaves open ones alone', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const open = await connect(t, proxy.port);
  proxy.refuse();
  const refused = net.connect(proxy.port, '127.0.0.1');
  const [err] = (await once(refused, 'error').catch((e: unknown) => [e])) as [NodeJS.ErrnoException];
  t.equal(err.code, 'ECONNRESET');
  open.socket.write('still here');
  await until('echo on the open connection', () => open.text() === 'still here');
});

t.test('throttle holds a direction to the rate', async (t) => {
  const echo = await echoServer(t);
  const proxy = await proxyFor(t, echo.port);
  const probe = await connect(t, proxy.port);
  const bytesPerSec = 40_000;
  proxy.throttle(bytesPerSec);
  const payload = 'z'.repeat(20_000);
  const started = Date.now();
  probe.socket.write(payload);
  await until('all bytes at the server', () => echo.received().length === payload.length);
  // A lower bound only: a slow machine makes this longer, never shorter.
  t.ok(Date.now() - started >= (payload.length / bytesPerSec) * 1000 * 0.8, 'not faster than the rate');
  proxy.throttle(null);
  t.throws(() => proxy.throttle(0), /"bytesPerSec" must be at least 1/);
});

t.test('close ends every connection', async (t) => {
  const echo = await echoServer(t);
  const proxy = await FaultProxy.start({ targetPort: echo.port });
  const a = await connect(t, proxy.port);
  proxy.blackhole();
  await proxy.close();
  await until('closed', () => a.ended() !== null);
  t.pass('closed');
});
