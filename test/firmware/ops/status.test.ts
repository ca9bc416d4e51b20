import { once } from 'node:events';
import { cpSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import type { LoadedBoard } from '../../../firmware/config/types.js';
import { createLogger } from '../../../firmware/log/logger.js';
import { formatReport } from '../../../firmware/ops/format.js';
import { RecentErrors } from '../../../firmware/ops/report.js';
import { Ops } from '../../../firmware/ops/service.js';
import { runStatusCli } from '../../../firmware/ops/status-cli.js';
import { requestStatus } from '../../../firmware/ops/status-socket.js';
import { RingLog } from '../../../firmware/store/log.js';
import { Runtime } from '../../../firmware/runtime.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { AedesBroker } from '../../support/brokers.js';
import { tempDir } from '../../support/tmp.js';
import { bundleGateway, startGateway } from '../../support/gateway-process.js';

const BOARD = fileURLToPath(new URL('../../../board.json', import.meta.url));
/** Records waiting when the uplink comes up: enough for several progress lines on a loopback broker. */
const BACKLOG_RECORDS = 20_000;

function silentLogger() {
  return createLogger({ destination: { write() {} } });
}

function collect(): { stream: PassThrough; text(): string } {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (d: Buffer) => (text += d.toString()));
  return { stream, text: () => text };
}

async function startInProcess(t: Parameters<typeof tempDir>[0], board: LoadedBoard, dataDir: string) {
  const errors = new RecentErrors();
  const runtime = new Runtime(board, { dataDir, hubPort: 0, onError: (source, err) => errors.add(source, err) });
  await runtime.start();
  const ops = await Ops.start({ runtime, logger: silentLogger(), errors, env: { RUNTIME_DIRECTORY: tempDir(t) } });
  t.teardown(async () => {
    await ops.stopping();
    await runtime.stop();
    await ops.close();
  });
  return { runtime, ops, errors };
}

t.test('outpost status answers over the unix socket: readable, --json, and metrics on loopback', async (t) => {
  const board = { ...(await loadBoard(BOARD)), metrics: { port: 0 } };
  const { ops, errors } = await startInProcess(t, board, tempDir(t));
  errors.add('uplink', new Error('cannot connect to mqtt://gw:pw-in-error-1@broker: ECONNREFUSED'));
  const socket = ops.socketPath!;

  const report = await requestStatus(socket);
  t.equal(report.gatewayId, 'outpost-sim');
  t.equal(report.link, 'disabled');
  t.same(
    report.lanes.map((l) => l.lane),
    [UPSTREAM_LANE],
  );
  t.type(report.quota.quotaBytes, 'number');
  t.equal(report.quota.ttlSecs, board.storage.ttlSecs);
  t.equal(report.metricsPort, ops.metricsPort);
  t.match(
    report.errors[0]!.message,
    /mqtt:\/\/gw:\[redacted\]@broker/,
    'recent errors are scrubbed before they are kept',
  );

  const json = collect();
  t.equal(await runStatusCli(['--json', '--socket', socket], '/nonexistent', json.stream), 0);
  t.same(
    Object.keys(JSON.parse(json.text())).sort(),
    Object.keys(report).sort(),
    '--json prints the report for scripts',
  );

  const text = collect();
  t.equal(await runStatusCli(['--socket', socket], '/nonexistent', text.stream), 0);
  for (const heading of [
    'link:      disabled (none)',
    'backlog:',
    'drain:',
    'quota:',
    'children:  0',
    'devices:',
    'errors:',
    'metrics:   http://127.0.0.1:',
  ]) {
    t.ok(text.text().includes(heading), `readable output has "${heading}"`);
  }
  t.equal(
    formatReport(report).split('\n')[0],
    `outpost outpost-sim [sim] pid ${process.pid}, up ${report.uptimeSecs}s`,
  );

  const res = await fetch(`http://127.0.0.1:${ops.metricsPort}/metrics`);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  const metrics = await res.text();
  t.match(metrics, /^# TYPE outpost_backlog_records gauge$/m);
  t.match(metrics, /^outpost_backlog_records\{lane="upstream"\} \d+$/m);
  t.match(metrics, /^outpost_link_up\{protocol="none",state="disabled"\} 0$/m);
  t.match(metrics, /^outpost_store_quota_bytes \d+$/m);
  t.equal((await fetch(`http://127.0.0.1:${ops.metricsPort}/`)).status, 404);
});

t.test('status names the socket when no gateway runs', async (t) => {
  const missing = join(tempDir(t), 'outpost.sock');
  await t.rejects(
    runStatusCli(['--socket', missing], '/nonexistent', collect().stream),
    new RegExp(`status socket ${missing}: ENOENT: is the gateway running\\?`),
  );
});

t.test('metrics port errors name board.json and the JSON path', async (t) => {
  const dir = t.testdir({
    'board.json': JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-m' }, metrics: { port: 70_000 } }),
  });
  const boardsDir = fileURLToPath(new URL('../../../boards/', import.meta.url));
  await t.rejects(
    loadBoard(join(dir, 'board.json'), { boardsDir }),
    /board\.json: \$\.metrics\.port: expected an integer between 0 and 65535 \(TCP port on 127\.0\.0\.1\), got 70000/,
  );
  const typo = t.testdir({
    'board.json': JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-m' }, metrics: { prot: 9464 } }),
  });
  await t.rejects(loadBoard(join(typo, 'board.json'), { boardsDir }), /board\.json: \$\.metrics/);
  const off = t.testdir({
    'board.json': JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-m' }, metrics: false }),
  });
  t.equal((await loadBoard(join(off, 'board.json'), { boardsDir })).metrics, null);
  const on = t.testdir({
    'board.json': JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-m' }, metrics: {} }),
  });
  t.same((await loadBoard(join(on, 'board.json'), { boardsDir })).metrics, { port: 9464 });
});

t.test('--watch prints a progress line while a long backlog drains, then returns', { timeout: 60_000 }, async (t) => {
  const dataDir = tempDir(t);
  const log = await RingLog.open({ dir: dataDir, syncMode: 'none' });
  const lane = await log.lane(UPSTREAM_LANE);
  const body = Buffer.alloc(200, 0x61);
  for (let i = 0; i < BACKLOG_RECORDS; i += 1000)
    await lane.appendBatch(Array.from({ length: 1000 }, () => ({ body })));
  await log.close();

  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const board = {
    ...(await loadBoard(BOARD)),
    uplink: { protocol: 'mqtt', url: broker.url, protocolVersion: 4, inflightMax: 10 },
  };
  const { ops } = await startInProcess(t, board, dataDir);
  const out = collect();
  t.equal(await runStatusCli(['--watch', '--socket', ops.socketPath!], '/nonexistent', out.stream), 0);
  const lines = out.text().trim().split('\n');
  t.match(
    lines[0],
    /^\[[#.]{24}\] +\d+% \d+ rec left, [\d.]+ rec\/s, ETA .+, link (up|resyncing|connecting|backoff|down)$/,
    lines[0],
  );
  t.equal(lines[lines.length - 1], 'backlog drained');
  t.match(lines[lines.length - 2], /\[#{24}\] 100% 0 rec left/);
});

t.test('a metrics port in use fails start-up, naming metrics.port, and the process exits', async (t) => {
  const blocker = createServer().listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  t.teardown(() => void blocker.close());
  const port = (blocker.address() as AddressInfo).port;
  const dir = tempDir(t);
  cpSync(fileURLToPath(new URL('../../../boards/', import.meta.url)), join(dir, 'boards'), { recursive: true });
  writeFileSync(
    join(dir, 'board.json'),
    JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-m' }, metrics: { port } }),
  );
  const gw = startGateway(await bundleGateway(tempDir(t)), ['run', '--board', join(dir, 'board.json')], {
    OUTPOST_DATA_DIR: join(dir, 'data'),
    OUTPOST_HUB_PORT: '0',
  });
  t.equal(await gw.exited(), 1, 'exits instead of lingering half-started');
  t.match(
    String(gw.lines().find((l) => l.level === 'fatal')?.msg),
    new RegExp(`metrics\\.port ${port}: listen EADDRINUSE`),
  );
});
