import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { loadBoard } from '../../firmware/config/index.js';
import { RECORD_KEY } from '../../firmware/uplink/message.js';
import { RingLog } from '../../firmware/store/log.js';
import { Runtime, UPSTREAM_LANE, formatStatus } from '../../firmware/runtime.js';
import { bundleForChild } from '../support/bundle.js';
import { tempDir } from '../support/tmp.js';

const BOARD = fileURLToPath(new URL('../../board.json', import.meta.url));
/** How long the sim board gets to produce readings, ms (bounded: the loop ends by itself). */
const READINGS_WAIT_MS_MAX = 15_000;

t.test('the sim board runs the pipeline: device readings land durably in the upstream lane', async (t) => {
  const dataDir = tempDir(t);
  const runtime = new Runtime(await loadBoard(BOARD), { dataDir, hubPort: 0 });
  await runtime.start();
  const started = Date.now();
  while (runtime.status().store.lanes[0]!.lastSeq < 5 && Date.now() - started < READINGS_WAIT_MS_MAX) {
    await new Promise((r) => setTimeout(r, 100));
  }
  const line = formatStatus(runtime.status());
  t.match(line, /outpost outpost-sim \[sim\] link=disabled backlog=\d+ rec/, 'status line names gateway, board and backlog');
  t.match(line, /env:temperatureC=/, 'status line shows a reading');
  await runtime.stop();

  const log = await RingLog.open({ dir: dataDir });
  const records = await (await log.lane(UPSTREAM_LANE)).read(1, { recordsMax: 100 });
  t.ok(records.length >= 5, `${records.length} readings stored`);
  const devices = new Set(records.map((r) => r.properties[RECORD_KEY.deviceId]));
  t.ok(devices.has('env'), `readings attributed to their devices (${[...devices].join(', ')})`);
  const env = records.find((r) => r.properties[RECORD_KEY.deviceId] === 'env')!;
  t.equal(env.properties[RECORD_KEY.contentType], 'application/json');
  t.type(JSON.parse(env.body.toString()).temperatureC, 'number');
  await log.close();
});

t.test('the bundled gateway starts, reports ready, and stops cleanly on SIGTERM', async (t) => {
  const dataDir = tempDir(t);
  const entry = await bundleForChild(fileURLToPath(new URL('../../firmware/main.ts', import.meta.url)), tempDir(t));
  const proc = spawn(process.execPath, [entry, 'run', '--board', BOARD], {
    env: { ...process.env, OUTPOST_DATA_DIR: dataDir, OUTPOST_HUB_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let signalled = false;
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (out.includes('outpost ready') && !signalled) {
      signalled = true;
      proc.kill('SIGTERM');
    }
  });
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((resolve) => proc.on('close', resolve));
  t.equal(code, 0, out);
  t.match(out, /outpost ready: board sim/);
  t.match(out, /SIGTERM, stopping[\s\S]*outpost stopped/);
});
