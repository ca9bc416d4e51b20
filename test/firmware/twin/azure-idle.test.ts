import t from 'tap';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { loadBoard } from '../../../firmware/board/board.js';
import { Runtime } from '../../../firmware/runtime.js';
import { until } from '../../support/hub-fixture.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { tempDir } from '../../support/tmp.js';

/**
 * A connected, idle gateway on an azure uplink reads its twin only when the cloud changed it: the SDK
 * re-fires its desired-properties event after every GET, which must not count as a change (it made the
 * gateway GET its twin 2-4 times a second, forever: ~260 MB a day on a metered link).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const GATEWAY_ID = 'gw-idle';
/** Each of the two observation windows: long enough for a GET loop (period ~300 ms) to show many times over. */
const IDLE_WINDOW_MS = 30_000;

const TEST_TIMEOUT_MS = 120_000;

const TITLE = 'an idle connected gateway makes no twin GETs; a real desired patch makes exactly one';

t.test(TITLE, { timeout: TEST_TIMEOUT_MS }, async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const dir = tempDir(t);
  cpSync(join(ROOT, 'boards'), join(dir, 'boards'), { recursive: true });
  writeFileSync(join(dir, 'ca.pem'), hub.ca.cert);
  writeFileSync(
    join(dir, 'board.json'),
    JSON.stringify({
      board: 'sim',
      identity: { gatewayId: GATEWAY_ID },
      uplink: { protocol: 'azure', connectionString: hub.addDevice(GATEWAY_ID), caFile: join(dir, 'ca.pem') },
    }),
  );
  const events: string[] = [];
  const started = Date.now();
  const note = (kind: string, text: string) => events.push(`+${Date.now() - started} ms ${kind}: ${text}`);
  const runtime = new Runtime(await loadBoard(join(dir, 'board.json')), {
    dataDir: tempDir(t),
    hubPort: 0,
    onError: (source, err) => note(`error ${source}`, err.message),
    log: {
      info: (fields, message) => note('info', `${message} ${JSON.stringify(fields)}`),
      warn: (fields, message) => note('warn', `${message} ${JSON.stringify(fields)}`),
    },
  });

  await runtime.start();
  t.teardown(() => runtime.stop());
  await until('the uplink to finish its resync', () => runtime.status().link === 'up');
  const gets = () => hub.operations(GATEWAY_ID, 'twin-get');
  const atUp = gets();
  t.ok(atUp >= 1, `${atUp} twin GETs while connecting and resyncing`);

  await sleep(IDLE_WINDOW_MS);
  t.equal(gets() - atUp, 0, `no twin GET in ${IDLE_WINDOW_MS / 1000} s idle`);

  hub.patchDesired(GATEWAY_ID, { site: 'north' });
  await until('the desired patch to be read', () => gets() > atUp);
  await sleep(IDLE_WINDOW_MS);
  t.equal(gets() - atUp, 1, `one GET for the desired patch, then none for ${IDLE_WINDOW_MS / 1000} s`);
  t.equal(runtime.status().uplink?.connects, 1, 'on one connection throughout');
  t.comment(`reported PATCHes meanwhile: ${hub.operations(GATEWAY_ID, 'twin-patch')}`);
  // What the gateway said, printed when an assertion failed: a reconnect names its cause here.
  if (t.counts.fail > 0) t.comment(`the gateway's log and errors:\n${events.join('\n')}`);
});
