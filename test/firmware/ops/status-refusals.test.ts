import t from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { loadBoard } from '../../../firmware/board/board.js';
import { createLogger } from '../../../firmware/log/logger.js';
import { RecentErrors } from '../../../firmware/ops/report.js';
import { Ops } from '../../../firmware/ops/service.js';
import { runStatusCli } from '../../../firmware/ops/status-cli.js';
import { requestStatus } from '../../../firmware/ops/status-socket.js';
import { Runtime } from '../../../firmware/runtime.js';
import { mqttChild, newKey, sasPassword, until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** Hub refusals are visible: in `outpost status`, in /metrics and in the journal (issue 17, item 16). */

const BOARD = fileURLToPath(new URL('../../../board.json', import.meta.url));

t.test('hub refusals by reason in outpost status, /metrics and a log line naming the client and address', async (t) => {
  const board = { ...(await loadBoard(BOARD)), metrics: { port: 0 }, hub: { connectTimeoutSecs: 1 } };
  const errors = new RecentErrors();
  const runtime = new Runtime(board, {
    dataDir: tempDir(t),
    hubPort: 0,
    onError: (source, err) => errors.add(source, err),
  });
  await runtime.start();
  const ops = await Ops.start({
    runtime,
    logger: createLogger({ destination: { write() {} } }),
    errors,
    env: { RUNTIME_DIRECTORY: tempDir(t) },
  });
  t.teardown(async () => {
    await ops.stopping();
    await runtime.stop();
    await ops.close();
  });
  const port = runtime.status().hub!.ports.tcp!;
  await t.rejects(
    mqttChild(port, 'ghost', sasPassword('ghost', newKey(), { host: 'localhost' }), { host: 'localhost' }),
    /Not authorized/,
    'an unknown device is refused',
  );
  const idle = net.connect(port, '127.0.0.1');
  await once(idle, 'connect');
  await once(idle, 'close');

  const report = await requestStatus(ops.socketPath!);
  t.same(report.hubRefusals, { 'unknown-device': 1, 'connect-timeout': 1 }, 'status --json has the refusals by reason');
  const text = new PassThrough();
  let out = '';
  text.on('data', (d: Buffer) => (out += d.toString()));
  t.equal(await runStatusCli(['--socket', ops.socketPath!], '/nonexistent', text), 0);
  t.match(
    out,
    /^refusals: {2}(unknown-device 1, connect-timeout 1|connect-timeout 1, unknown-device 1)$/m,
    'and the readable output',
  );
  const metrics = await (await fetch(`http://127.0.0.1:${ops.metricsPort}/metrics`)).text();
  t.match(metrics, /^# TYPE outpost_hub_refusals_total counter$/m);
  t.match(metrics, /^outpost_hub_refusals_total\{reason="unknown-device"\} 1$/m);
  t.match(metrics, /^outpost_hub_refusals_total\{reason="connect-timeout"\} 1$/m);
  await until('the refusal summary', () => errors.list().some((e) => e.source === 'hub'));
  t.match(
    errors.list().find((e) => e.source === 'hub')?.message,
    /^hub refused 1 .*unknown-device 1 \("ghost" from 127\.0\.0\.1\)/,
    'the journal names the client id and address',
  );
});
