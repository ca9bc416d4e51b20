import net from 'node:net';
import { join } from 'node:path';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { Runtime } from '../../../firmware/runtime.js';
import { formatStatus } from '../../../firmware/ops/status-line.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
/** Bound on every wait for a state: the sim link flips every few seconds, so this is many cycles. */
const STATE_WAIT_MS_MAX = 30_000;

t.test(
  "npm start's board: the embedded cloud receives everything, in order, after the link drops and returns",
  async (t) => {
    const board = await loadBoard(join(ROOT, 'boards/examples/sim-cloud.json'));
    t.match(board.uplink, { protocol: 'sim' }, 'npm start runs with the sim cloud, not link=disabled');
    // No cycle: the test flips the link with SIGUSR1, so it stays down for as long as the assertions take.
    const sim = { protocol: 'sim', linkUpSecs: 3600, linkDownSecs: 0 };
    const runtime = new Runtime({ ...board, uplink: sim }, { dataDir: tempDir(t), hubPort: 0 });
    await runtime.start();
    t.teardown(() => runtime.stop());
    const cloud = () => runtime.status().uplink!.simCloud!;
    const upstream = () => runtime.status().store.lanes.find((l) => l.lane === UPSTREAM_LANE)!;
    const lane = await runtime.store.lane(UPSTREAM_LANE);
    const put = (n: number) =>
      lane.append({ body: Buffer.from(JSON.stringify({ n })), properties: { [RECORD_KEY.deviceId]: 'test' } });

    await until(
      'the link up and a first message at the cloud',
      () => runtime.status().link === 'up' && cloud().received > 0,
      STATE_WAIT_MS_MAX,
    );
    process.kill(process.pid, 'SIGUSR1');
    await until(
      'the link down',
      () => cloud().link.state === 'down' && runtime.status().link !== 'up',
      STATE_WAIT_MS_MAX,
    );
    const lastSeqBefore = upstream().lastSeq;
    for (let n = 0; n < 20; n++) await put(n);
    t.ok(upstream().pendingRecords >= 20, `the backlog grows while the link is down (${upstream().pendingRecords})`);
    const line = formatStatus(runtime.status());
    t.match(line, /link=(backoff|connecting) backlog=\d+ rec/, line);
    t.match(line, /sim link down; cloud received=\d+ \(in order, \d+ repeats\)/);

    process.kill(process.pid, 'SIGUSR1');
    await until(
      'the backlog drained at the cloud',
      () => upstream().pendingRecords === 0 && (cloud().lastSeq ?? 0) >= lastSeqBefore + 20,
      STATE_WAIT_MS_MAX,
    );
    const status = cloud();
    t.equal(status.outOfOrder, 0, 'in stored order');
    t.equal(status.received, status.lastSeq, 'every stored record arrived once (seq 1..lastSeq)');
    t.match(formatStatus(runtime.status()), /link=up backlog=0 rec/);
  },
);

t.test('the link drops and returns on its cycle; stop closes the embedded cloud and its signal handler', async (t) => {
  const board = await loadBoard(join(ROOT, 'boards/examples/sim-cloud.json'));
  const runtime = new Runtime(
    { ...board, uplink: { protocol: 'sim', linkUpSecs: 1, linkDownSecs: 1 } },
    { dataDir: tempDir(t), hubPort: 0 },
  );
  await runtime.start();
  t.teardown(() => runtime.stop());
  const cloud = () => runtime.status().uplink!.simCloud!;
  await until(
    'two drops, and the uplink up again after them',
    () => cloud().link.drops >= 2 && runtime.status().link === 'up',
    STATE_WAIT_MS_MAX,
  );
  t.type(cloud().link.nextChangeInSecs, 'number', 'the status says when the link changes next');
  const broker = new URL(cloud().brokerUrl);
  await runtime.stop();
  const code = await new Promise<string>((resolve) => {
    const probe = net.connect(Number(broker.port), broker.hostname, () => (probe.destroy(), resolve('connected')));
    probe.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
  });
  t.equal(code, 'ECONNREFUSED', 'the embedded broker is closed with the gateway');
  t.equal(process.listenerCount('SIGUSR1'), 0, 'the signal handler is gone with the cloud');
});

t.test('the sim cloud is refused on any board but the sim one', async (t) => {
  const dir = t.testdir({
    'board.json': JSON.stringify({ board: 'rpi4', identity: { gatewayId: 'gw-1' }, uplink: { protocol: 'sim' } }),
  });
  await t.rejects(loadBoard(join(dir, 'board.json'), { boardsDir: join(ROOT, 'boards') }), {
    message: new RegExp(
      /board\.json: \$\.uplink\.protocol: expected "mqtt", "azure" or "none" /.source +
        /\("sim" is for the sim board only\), got "sim"$/.source,
    ),
  });
});

t.test('the link resets what it relays when it goes down, as a carrier loss does', async (t) => {
  const { SimLink } = await import('../../../firmware/sim/link.js');
  const echo = net.createServer((s) => s.pipe(s));
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => echo.close(() => resolve())));
  const link = await SimLink.start({ targetPort: (echo.address() as net.AddressInfo).port, upSecs: 3600, downSecs: 0 });
  const socket = net.connect(link.port, '127.0.0.1');
  socket.write('ping');
  const [echoed] = await new Promise<Buffer[]>((resolve) => socket.once('data', (d: Buffer) => resolve([d])));
  t.equal(echoed!.toString(), 'ping', 'relayed while up');
  const closed = new Promise<string>((resolve) =>
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error')),
  );
  link.toggle();
  t.equal(await closed, 'ECONNRESET');
  const refused = net.connect(link.port, '127.0.0.1');
  t.match(
    await new Promise<string>((resolve) => {
      refused.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
      refused.once('close', () => resolve('closed'));
    }),
    /ECONNRESET|closed/,
    'a new connection while down is refused',
  );
  await link.stop();
});
