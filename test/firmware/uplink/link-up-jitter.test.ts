import t from 'tap';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { LINK_UP_JITTER_MS_MAX_DEFAULT, Pump } from '../../../firmware/uplink/pump.js';
import { Mosquitto } from '../../support/brokers.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { until } from '../../support/until.js';

/**
 * A link-up wake connects after a random delay below linkUpJitterMsMax, drawn from the injected random
 * source, so gateways whose links return together reach the broker spread out; the delay is bounded, so
 * one gateway is still prompt. The backoff sleeps under way are 30 s: only the wake can end them.
 */

const SLEEP_MS = 30_000;
/** performance.now() and the timer clock round differently; a timer may look this much early. */
const CLOCK_SLACK_MS = 5;

function sleepingPump(proxyPort: number, gatewayId: string, draw: () => number, linkUpJitterMsMax?: number): Pump {
  const lane = new MemoryLane('upstream');
  void lane.append({ body: Buffer.from('1') });
  const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${proxyPort}`, gatewayId });
  const backoff = { baseMs: SLEEP_MS, maxMs: SLEEP_MS, random: draw };
  return new Pump({ gatewayId, transport, lanes: [{ lane }], backoff, linkUpJitterMsMax });
}

t.test('woken together, pumps connect spread over the jitter window by their random draws', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  proxy.refuse();
  const count = 10;
  const jitterMsMax = 1_000;
  const draws = Array.from({ length: count }, () => 0.999);
  const pumps = draws.map((_, i) => sleepingPump(proxy.port, `gw-jitter-${i}`, () => draws[i]!, jitterMsMax));
  for (const pump of pumps) {
    pump.start();
    t.teardown(() => pump.stop());
  }
  await until('every pump in its 30 s backoff', () => pumps.every((p) => (p.status().retryInMs ?? 0) > SLEEP_MS / 2));
  proxy.pass();
  const acceptsBefore = proxy.acceptTimesMs.length;
  const wokenAtMs = performance.now();
  pumps.forEach((pump, i) => {
    draws[i] = i / count;
    pump.wake('wwan0 up');
  });
  pumps.forEach((pump, i) => {
    const retryInMs = pump.status().retryInMs!;
    const drawnMs = (i * jitterMsMax) / count;
    const what = `pump ${i}: the sleep now ends in ${retryInMs} ms (drawn ${drawnMs})`;
    t.ok(retryInMs <= drawnMs && retryInMs > drawnMs - 100, what);
  });
  await until('every pump up', () => pumps.every((p) => p.status().link === 'up'));
  const accepts = proxy.acceptTimesMs.slice(acceptsBefore).map((at) => at - wokenAtMs);
  t.equal(accepts.length, count, 'one connect each');
  accepts.forEach((atMs, k) => {
    const drawnMs = (k * jitterMsMax) / count;
    const what = `connect ${k} at ${atMs.toFixed(0)} ms, not before its draw (${drawnMs} ms)`;
    t.ok(atMs >= drawnMs - CLOCK_SLACK_MS, what);
  });
});

t.test('the default jitter keeps a single gateway prompt', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  proxy.refuse();
  let draw = 0.999;
  const pump = sleepingPump(proxy.port, 'gw-jitter-one', () => draw);
  pump.start();
  t.teardown(() => pump.stop());
  await until('the 30 s backoff', () => (pump.status().retryInMs ?? 0) > SLEEP_MS / 2);
  proxy.pass();
  draw = 0.999_999;
  pump.wake('wwan0 up');
  const retryInMs = pump.status().retryInMs!;
  const bound = LINK_UP_JITTER_MS_MAX_DEFAULT;
  t.ok(retryInMs < bound, `at most ${bound} ms even at the top draw: ${retryInMs}`);
  t.ok(retryInMs > LINK_UP_JITTER_MS_MAX_DEFAULT - 100, 'and the top draw is used');
  await until('up', () => pump.status().link === 'up');
});
