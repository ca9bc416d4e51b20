import t from 'tap';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { watchLink } from '../../../firmware/uplink/link-watch.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber } from '../../support/delivery.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

/**
 * Link-up wake: with the backoff at its maximum (a 30 s sleep under way), the interface coming back up must
 * end the sleep and get the first backlog message to the broker promptly. The bound is loose on purpose
 * (5 s against the 30 s the backoff would have slept); the benchmark measures the real figure.
 */

const BACKOFF_MAX_MS = 30_000;
const LINK_UP_BOUND_MS = 5_000;

async function setLink(sysDir: string, up: boolean): Promise<void> {
  await mkdir(path.join(sysDir, 'wwan0'), { recursive: true });
  await writeFile(path.join(sysDir, 'wwan0', 'operstate'), up ? 'up\n' : 'down\n');
  await writeFile(path.join(sysDir, 'wwan0', 'carrier'), up ? '1\n' : '0\n');
}

t.test('operstate going up ends a maximal backoff at once', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-wake/+/telemetry');
  t.teardown(() => sub.close());
  const sysDir = tempDir(t);
  await setLink(sysDir, false);
  proxy.refuse();

  const lane = new MemoryLane('telemetry');
  for (let i = 1; i <= 50; i += 1) await lane.append({ body: Buffer.from(String(i)) });
  const transport = createMqttTransport({
    url: `mqtt://127.0.0.1:${proxy.port}`,
    gatewayId: 'gw-wake',
    connectTimeoutMs: 1_000,
  });
  // Jitter pinned high and a steep factor, so the ceiling reaches its maximum within two failures.
  const pump = new Pump({
    gatewayId: 'gw-wake',
    transport,
    lanes: [{ lane }],
    backoff: { baseMs: 200, maxMs: BACKOFF_MAX_MS, factor: 15, random: () => 0.999 },
  });
  const watch = watchLink({ interfaces: ['wwan0'], sysClassNetDir: sysDir, pollMs: 50, onUp: (why) => pump.wake(why) });
  t.teardown(() => watch.stop());
  pump.start();
  t.teardown(() => pump.stop());

  await until('a maximal backoff sleep', () => (pump.status().retryInMs ?? 0) > BACKOFF_MAX_MS / 2);
  t.equal(pump.status().backoffCeilingMs, BACKOFF_MAX_MS, 'the backoff is at its maximum');
  t.equal(sub.values.length, 0, 'nothing got through the dead link');

  proxy.pass();
  const restoredAt = Date.now();
  await setLink(sysDir, true);
  await until('the first backlog message', () => sub.values.length > 0, BACKOFF_MAX_MS);
  const elapsedMs = Date.now() - restoredAt;
  t.ok(elapsedMs < LINK_UP_BOUND_MS, `first message ${elapsedMs} ms after the link came up`);
  t.equal(sub.values[0], 1, 'and it is the oldest one');
  t.match(pump.status().lastWake, { reason: 'wwan0 up' });
});

t.test('the modem hook file wakes the pump too', async (t) => {
  const sysDir = tempDir(t);
  const flag = path.join(sysDir, 'link-up');
  const reasons: string[] = [];
  const watch = watchLink({ interfaces: [], modemFlagPath: flag, pollMs: 20, onUp: (why) => reasons.push(why) });
  t.teardown(() => watch.stop());
  await sleep(60);
  await writeFile(flag, '');
  await until('modem hook', () => reasons.length > 0);
  t.same(reasons, ['modem hook']);
});

t.test('interface states: unknown + carrier counts as up, a missing interface as down', async (t) => {
  const sysDir = tempDir(t);
  await mkdir(path.join(sysDir, 'ppp0'));
  await writeFile(path.join(sysDir, 'ppp0', 'operstate'), 'unknown\n');
  await writeFile(path.join(sysDir, 'ppp0', 'carrier'), '1\n');
  const events: string[] = [];
  const watch = watchLink({
    interfaces: ['ppp0', 'eth9'],
    sysClassNetDir: sysDir,
    pollMs: 20,
    onUp: (why) => events.push(why),
    onDown: (why) => events.push(why),
  });
  t.teardown(() => watch.stop());
  await until('first poll', () => Object.keys(watch.states()).length === 2);
  t.same(watch.states(), { ppp0: 'up', eth9: 'down' });
  await writeFile(path.join(sysDir, 'ppp0', 'carrier'), '0\n');
  await until('down', () => events.length > 0);
  t.same(events, ['ppp0 down'], 'a link already up at start is not reported; its loss is');
  t.throws(() => watchLink({ interfaces: [], pollMs: 1, onUp: () => {} }), /"pollMs" must be an integer from 10/);
});
