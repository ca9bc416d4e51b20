/**
 * Child process for the uplink SIGKILL test: opens a ring log in `dir`, appends `total` numbered messages
 * on its first run (bodies "1".."total"), then drains them with startUplink to the broker at `url`.
 * It prints `A <total>` once the backlog is durable, `P <ackedSeq>` as the drain advances, and `D` when
 * everything is acknowledged and the service stopped cleanly. The parent SIGKILLs it mid-drain.
 */
import path from 'node:path';
import { RingLog } from '../../firmware/store/log.js';
import { parseUplinkConfig } from '../../firmware/uplink/config.js';
import { startUplink, UPSTREAM_LANE_NAME } from '../../firmware/uplink/service.js';

const [dir, url, totalArg, gatewayId, checkpointArg] = process.argv.slice(2);
const total = Number(totalArg);
/** Appends awaited together, so group commit writes them in a few batches. */
const APPEND_BATCH_RECORDS = 500;
const PROGRESS_MS = 20;

const log = await RingLog.open({ dir: dir!, checkpointIntervalMs: Number(checkpointArg) });
const lane = await log.lane(UPSTREAM_LANE_NAME);
if (lane.lastDurableSeq() === 0) {
  for (let from = 1; from <= total; from += APPEND_BATCH_RECORDS) {
    const batch: Array<Promise<number>> = [];
    for (let i = from; i < from + APPEND_BATCH_RECORDS && i <= total; i += 1)
      batch.push(lane.append({ body: Buffer.from(String(i)) }));
    await Promise.all(batch);
  }
}
process.stdout.write(`A ${lane.lastDurableSeq()}\n`);

const config = parseUplinkConfig(
  { protocol: 'mqtt', url, inflightMax: 100, backoff: { baseMs: 50, maxMs: 500 } },
  path.join(dir!, 'board.json'),
);
const service = await startUplink({
  config,
  gatewayId: gatewayId!,
  log,
  dataDir: dir!,
  onError: (err) => process.stderr.write(`${err.message}\n`),
});
const timer = setInterval(() => {
  process.stdout.write(`P ${lane.ackedSeq()}\n`);
  if (lane.ackedSeq() < total) return;
  clearInterval(timer);
  void service
    .stop()
    .then(() => log.close())
    .then(() => process.stdout.write('D\n'));
}, PROGRESS_MS);
