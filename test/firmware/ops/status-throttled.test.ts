import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { formatReport } from '../../../firmware/ops/format.js';
import { createLogger } from '../../../firmware/log/logger.js';
import { RecentErrors } from '../../../firmware/ops/report.js';
import { Ops } from '../../../firmware/ops/service.js';
import { requestStatus } from '../../../firmware/ops/status-socket.js';
import { Runtime } from '../../../firmware/runtime.js';
import { AedesBroker } from '../../support/brokers.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { tempDir } from '../../support/tmp.js';

/**
 * A broker that refuses connects over its rate (CONNACK 0x9F, MQTT 5) shows in `outpost status` and the
 * metrics as throttling, by reason, with the gateway's own uplink, runtime and ops wiring.
 */

const BOARD = fileURLToPath(new URL('../../../board.json', import.meta.url));
const REASON = 'connack-0x9f-connection-rate-exceeded';

t.test('throttling answers are counted in outpost status and /metrics', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  proxy.limitAccepts({ acceptsPerSec: 0, burst: 0 });
  const url = `mqtt://127.0.0.1:${proxy.port}`;
  const uplink = { protocol: 'mqtt', url, protocolVersion: 5 };
  const board = { ...(await loadBoard(BOARD)), metrics: { port: 0 }, uplink };
  const errors = new RecentErrors();
  const onError = (source: string, err: Error) => errors.add(source, err);
  const runtime = new Runtime(board, { dataDir: tempDir(t), hubPort: 0, onError });
  await runtime.start();
  const logger = createLogger({ destination: { write() {} } });
  const ops = await Ops.start({ runtime, logger, errors, env: { RUNTIME_DIRECTORY: tempDir(t) } });
  t.teardown(async () => {
    await ops.stopping();
    await runtime.stop();
    await ops.close();
  });
  const deadline = Date.now() + 15_000;
  let report = await requestStatus(ops.socketPath!);
  while (report.throttled.total === 0 && Date.now() < deadline) {
    await sleep(20);
    report = await requestStatus(ops.socketPath!);
  }
  t.same(report.throttled, { total: 1, byReason: { [REASON]: 1 } }, 'one refused connect, then the long backoff');
  t.match(formatReport(report), new RegExp(`^throttled: 1: ${REASON} 1$`, 'm'), 'a line in outpost status');
  const metrics = await (await fetch(`http://127.0.0.1:${ops.metricsPort}/metrics`)).text();
  t.match(metrics, /^# TYPE outpost_uplink_throttled_total counter$/m);
  // A later snapshot: the next refused connect (two seconds on at the earliest) may have been counted too.
  const sample = new RegExp(`^outpost_uplink_throttled_total\\{reason="${REASON}"\\} [1-9]\\d*$`, 'm');
  t.match(metrics, sample, 'and in the metrics');
});
