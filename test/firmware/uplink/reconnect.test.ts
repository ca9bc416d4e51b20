import t from 'tap';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump, type PumpOptions } from '../../../firmware/uplink/pump.js';
import type { UplinkTransport } from '../../../firmware/uplink/types.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { until } from '../../support/until.js';

/** How the pump treats connections that die: backoff that remembers, probes on wake, a stop that keeps its budget. */

async function fill(lane: MemoryLane, from: number, to: number): Promise<void> {
  for (let i = from; i <= to; i += 1) await lane.append({ body: Buffer.from(String(i)) });
}

/** mosquitto behind a fault proxy, a subscriber straight at the broker, a lane and a pump through the proxy. */
async function rig(t: { teardown(fn: () => unknown): void }, gatewayId: string, options: Partial<PumpOptions>) {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const sub = await Subscriber.start(broker.url, `outpost/${gatewayId}/+/telemetry`);
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  const errors: string[] = [];
  const proxyUrl = `mqtt://127.0.0.1:${proxy.port}`;
  // A keepalive far beyond the test, so only the pump's own checks can notice a silent connection.
  const makePump = () =>
    new Pump({
      gatewayId,
      transport: createMqttTransport({ url: proxyUrl, gatewayId, protocolVersion: 4, keepaliveSecs: 600 }),
      lanes: [{ lane }],
      onError: (err) => errors.push(err.message),
      ...options,
    });
  return { proxy, sub, lane, errors, makePump };
}

t.test('a broker that accepts and drops every connection sees the backoff grow; a stable one resets it', async (t) => {
  const BASE_MS = 50;
  const backoff = { baseMs: BASE_MS, maxMs: 10_000, random: () => 0.999 };
  const { proxy, makePump } = await rig(t, 'gw-flap', { backoff, stableConnectionMs: 1_000 });
  const pump = makePump();
  pump.start();
  t.teardown(() => pump.stop());
  for (let connects = 1; connects <= 4; connects += 1) {
    await until(`connection ${connects}`, () => pump.status().connects === connects && pump.status().link === 'up');
    proxy.cut();
  }
  await until('connection 5', () => pump.status().connects === 5);
  t.equal(pump.status().backoffCeilingMs, BASE_MS * 2 ** 4, 'four short connections: the ceiling doubled 4 times');
  await until('connection 5 stable', () => Date.now() - (pump.status().connectedSinceWallMs ?? Date.now()) > 1_100);
  proxy.cut();
  await until('connection 6', () => pump.status().connects === 6);
  t.equal(pump.status().backoffCeilingMs, BASE_MS * 2, 'after a stable connection the backoff started over');
});

t.test('a wake on a connection an outage killed silently reconnects at once, not after the timeout', async (t) => {
  const PUBLISH_TIMEOUT_MS = 20_000;
  const options = { publishTimeoutMs: PUBLISH_TIMEOUT_MS, probeTimeoutMs: 500 };
  const { proxy, sub, lane, errors, makePump } = await rig(t, 'gw-probe', options);
  const pump = makePump();
  await fill(lane, 1, 10);
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(10, 10_000));
  pump.wake('SIGUSR2');
  await until('the probe answered', () => pump.status().lastProbe !== null);
  t.match(pump.status().lastProbe, { answered: true });
  t.equal(pump.status().connects, 1, 'a wake on a healthy connection leaves it alone');

  proxy.strand();
  await fill(lane, 11, 20);
  await until('publishes stuck in flight', () => pump.status().inflight > 0);
  pump.wake('SIGUSR2');
  // Bounded well inside the publish timeout, which is what the pump would otherwise have waited for.
  t.ok(await sub.waitForDistinct(20, PUBLISH_TIMEOUT_MS / 2), 'the backlog went out on a new connection');
  t.same(checkDelivery(sub.values, 20, 100).problems, []);
  t.equal(pump.status().connects, 2);
  const probeFailed = /no answer to a probe within 500 ms after a link-up notice/;
  t.ok(
    errors.some((e) => probeFailed.test(e)),
    'the probe found it dead',
  );
  t.notOk(
    errors.some((e) => /no PUBACK for/.test(e)),
    'not the publish timeout',
  );
});

t.test('stop keeps its budget on a black-holed busy link; what was in flight goes after a restart', async (t) => {
  const STOP_BUDGET_MS = 2_000;
  /** Timers on a loaded two-core machine fire late by this much at most; the budget itself is the claim. */
  const SCHEDULING_SLACK_MS = 1_000;
  const { proxy, sub, lane, makePump } = await rig(t, 'gw-stop', { publishTimeoutMs: 20_000 });
  const first = makePump();
  await fill(lane, 1, 10);
  first.start();
  t.ok(await sub.waitForDistinct(10, 10_000));
  proxy.blackhole();
  await fill(lane, 11, 50);
  await until('publishes stuck in flight', () => first.status().inflight > 0);
  const started = Date.now();
  await first.stop(STOP_BUDGET_MS);
  const tookMs = Date.now() - started;
  t.ok(tookMs <= STOP_BUDGET_MS + SCHEDULING_SLACK_MS, `stop took ${tookMs} ms of its ${STOP_BUDGET_MS} ms budget`);
  t.equal(first.status().link, 'stopped');
  t.ok(lane.ackedSeq() <= 10, 'nothing unacknowledged was acked');

  proxy.pass();
  const second = makePump();
  second.start();
  t.teardown(() => second.stop());
  t.ok(await sub.waitForDistinct(50, 10_000), 'everything arrived after the restart');
  t.same(checkDelivery(sub.values, 50, 100).problems, []);
});

/**
 * The link is cut while the first connection's resync hook runs. The hook either returns as soon as the
 * transport has seen the loss (the pump must not then start a drain on the dead connection) or goes on
 * hanging (the pump must not wait it out). Either way the pump reconnects at once, with nothing to publish.
 */
for (const hookAfterCut of ['returns', 'hangs'] as const) {
  t.test(`a connection lost while a resync hook runs (the hook ${hookAfterCut}) is noticed at once`, async (t) => {
    const PUBLISH_TIMEOUT_MS = 20_000;
    let runs = 0;
    let inHook!: () => void;
    const hookEntered = new Promise<void>((resolve) => (inHook = resolve));
    let release = () => {};
    const hook = {
      name: 'held-until-the-cut',
      run: async (transport: UplinkTransport) => {
        runs += 1;
        if (runs > 1) return;
        const lost = new Promise<void>((resolve) => transport.onDisconnect(() => resolve()));
        inHook();
        await lost;
        if (hookAfterCut === 'hangs') await new Promise<void>((resolve) => (release = resolve));
      },
    };
    const options = { resyncHooks: [hook], publishTimeoutMs: PUBLISH_TIMEOUT_MS, backoff: { baseMs: 50 } };
    const { proxy, sub, lane, errors, makePump } = await rig(t, `gw-resync-${hookAfterCut}`, options);
    const pump = makePump();
    pump.start();
    t.teardown(() => (release(), pump.stop()));
    await hookEntered;
    t.equal(pump.status().link, 'resyncing');
    proxy.cut();
    await until('a second connection with its hooks done', () => pump.status().connects === 2 && runs === 2);
    await until('the second drain', () => pump.status().link === 'up');
    t.equal(proxy.connectionCount, 1, 'the pump says up over a live connection');
    t.ok(
      errors.some((e) => /connection lost before the drain began/.test(e)),
      'the loss was reported',
    );
    await fill(lane, 1, 10);
    // Bounded well inside the publish timeout, which is what noticed the dead connection before.
    t.ok(await sub.waitForDistinct(10, PUBLISH_TIMEOUT_MS / 2), 'the backlog appended afterwards went out');
    t.same(checkDelivery(sub.values, 10, 100).problems, []);
    t.equal(pump.status().connects, 2, 'no publish met a dead connection');
    t.notOk(
      errors.some((e) => /no PUBACK for|not connected/.test(e)),
      'neither the publish timeout nor a failed send',
    );
  });
}

t.test('a wake that finds the connection dead while a resync hook runs replaces it at once', async (t) => {
  let runs = 0;
  let inHook!: () => void;
  const hookEntered = new Promise<void>((resolve) => (inHook = resolve));
  let release = () => {};
  // The first connection's hook hangs on the stranded link until the test ends.
  const hook = {
    name: 'hangs-on-the-first-connection',
    run: async () => {
      runs += 1;
      if (runs > 1) return;
      inHook();
      await new Promise<void>((resolve) => (release = resolve));
    },
  };
  const options = { resyncHooks: [hook], publishTimeoutMs: 20_000, probeTimeoutMs: 500 };
  const { proxy, sub, lane, errors, makePump } = await rig(t, 'gw-resync-wake', options);
  const pump = makePump();
  pump.start();
  t.teardown(() => (release(), pump.stop()));
  await hookEntered;
  proxy.strand();
  pump.wake('SIGUSR2');
  await until('a second connection with its hooks done', () => pump.status().connects === 2 && runs === 2);
  await until('the second drain', () => pump.status().link === 'up');
  t.match(pump.status().lastProbe, { answered: false });
  t.ok(
    errors.some((e) => /no answer to a probe within 500 ms/.test(e)),
    'the probe found it dead',
  );
  await fill(lane, 1, 10);
  t.ok(await sub.waitForDistinct(10, 10_000), 'the backlog appended afterwards went out');
  t.equal(pump.status().connects, 2);
});
