import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseUplinkConfig } from '../../../firmware/uplink/config.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { LINK_UP_JITTER_MS_MAX_DEFAULT, Pump } from '../../../firmware/uplink/pump.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber } from '../../support/delivery.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';

/**
 * Boot-time jitter: a site whose power returns starts every gateway in the same second, so the first connect
 * after start waits a random delay below bootJitterMsMax (the injected random source decides it), shown as a
 * backoff in status, ended by a stop; 0 connects at once. board.json's uplink.bootJitterMsMax sets it, and
 * defaults to the link-up jitter's 800 ms.
 */

/** performance.now() and the timer clock round differently; a timer may look this much early. */
const CLOCK_SLACK_MS = 5;

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function bootingPump(port: number, index: number, draw: number, bootJitterMsMax: number): Pump {
  const gatewayId = `gw-boot-${index}`;
  const lane = new MemoryLane('upstream');
  void lane.append({ body: Buffer.from(String(index)) });
  const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${port}`, gatewayId });
  return new Pump({ gatewayId, transport, lanes: [{ lane }], backoff: { random: () => draw }, bootJitterMsMax });
}

t.test('started together, pumps make their first connect spread over the boot jitter by their draws', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const sub = await Subscriber.start(broker.url, 'outpost/+/+/telemetry');
  t.teardown(() => sub.close());
  const count = 8;
  const jitterMsMax = 1_000;
  const pumps = Array.from({ length: count }, (_, i) => bootingPump(proxy.port, i, i / count, jitterMsMax));
  const startedAtMs = performance.now();
  pumps.forEach((pump, i) => {
    pump.start();
    t.teardown(() => pump.stop());
    const { link, retryInMs } = pump.status();
    const drawnMs = (i * jitterMsMax) / count;
    t.equal(link, 'backoff', `pump ${i} waits before its first connect`);
    t.ok(retryInMs! <= drawnMs && retryInMs! > drawnMs - 100, `pump ${i}: ${retryInMs} ms left of ${drawnMs}`);
  });
  await until('every pump up', () => pumps.every((p) => p.status().link === 'up'));
  const accepts = proxy.acceptTimesMs.map((at) => at - startedAtMs);
  t.equal(accepts.length, count, 'one connect each');
  accepts.forEach((atMs, k) => {
    const drawnMs = (k * jitterMsMax) / count;
    const what = `connect ${k} at ${atMs.toFixed(0)} ms, not before its draw (${drawnMs} ms)`;
    t.ok(atMs >= drawnMs - CLOCK_SLACK_MS, what);
  });
  t.ok(await sub.waitForDistinct(count, 15_000), 'and every gateway delivers');
});

t.test('0 connects at once; a stop ends the boot delay without a connect', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const prompt = bootingPump(proxy.port, 100, 0.999, 0);
  prompt.start();
  t.teardown(() => prompt.stop());
  t.equal(prompt.status().link, 'connecting', 'no boot delay with 0');
  await until('up', () => prompt.status().link === 'up');

  const late = bootingPump(proxy.port, 101, 0.999, 60_000);
  late.start();
  t.ok(late.status().retryInMs! > 50_000, `a long boot delay: ${late.status().retryInMs} ms`);
  const stopStartedMs = performance.now();
  await late.stop(2_000);
  t.ok(performance.now() - stopStartedMs < 1_000, 'the stop does not wait it out');
  t.equal(late.status().link, 'stopped');
  t.equal(proxy.acceptedCount, 1, 'and it never connected');
});

t.test("board.json's uplink.bootJitterMsMax and linkUpJitterMsMax: defaults, 0, errors naming the field", (t) => {
  const board = (extra: Record<string, unknown>) => ({ protocol: 'mqtt', url: 'mqtt://127.0.0.1:1883', ...extra });
  const parse = (extra: Record<string, unknown>) => parseUplinkConfig(board(extra), '/etc/outpost/board.json');
  const defaults = parse({});
  t.equal(defaults.protocol === 'mqtt' && defaults.bootJitterMsMax, LINK_UP_JITTER_MS_MAX_DEFAULT, 'boot: 800 ms');
  t.equal(defaults.protocol === 'mqtt' && defaults.linkUpJitterMsMax, LINK_UP_JITTER_MS_MAX_DEFAULT, 'link-up: 800 ms');
  const off = parse({ bootJitterMsMax: 0, linkUpJitterMsMax: 0 });
  t.same(off.protocol === 'mqtt' && [off.bootJitterMsMax, off.linkUpJitterMsMax], [0, 0], '0 allowed');
  t.throws(() => parse({ bootJitterMsMax: 60_001 }), /board\.json.*uplink\.bootJitterMsMax/s);
  t.throws(() => parse({ linkUpJitterMsMax: 1_001 }), /board\.json.*uplink\.linkUpJitterMsMax/s);
  t.end();
});
