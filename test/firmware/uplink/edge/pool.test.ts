import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { CLOUD_CONNECTS_INFLIGHT_MAX } from '../../../../firmware/uplink/edge/limits.js';
import { createIdentityLink } from '../../../../firmware/uplink/edge/link.js';
import { FaultProxy } from '../../../support/fault-proxy.js';
import { ManualClock } from '../../../support/manual-clock.js';
import { bodiesOf, edgeRig, linkVia, until } from '../../../support/edge-rig.js';

/** Edge mode's pool of per-identity connections: bounded, paced, closed when idle, each with its own backoff. */

/** How much longer each connect takes in the slow-link test, ms: several pacing intervals at 100 a second. */
const SLOW_CONNECT_MS = 400;

const sorted = (values: number[]) => [...values].sort((a, b) => a - b);

t.test('no more upstream connections than cloudConnectionsMax; idle ones make room', async (t) => {
  const children = ['c1', 'c2', 'c3', 'c4'];
  const rig = await edgeRig(t, { children, connectionsMax: 2 });
  await rig.append(Array.from({ length: 200 }, (_, i) => children[i % 4]!));
  let peak = 0;
  rig.hub.onTelemetry(() => {
    peak = Math.max(peak, children.filter((id) => rig.hub.isConnected(id)).length);
  });
  rig.start();
  await until('all telemetry', () => rig.hub.telemetry.length >= 200);
  t.ok(peak <= 2, `at most 2 children connected at once (peak ${peak})`);
  for (const id of children) t.same(bodiesOf(rig.hub, id), sorted(bodiesOf(rig.hub, id)), `${id} in order`);
  t.equal(rig.hub.telemetry.length, 200, 'each message once');
});

t.test("a connection without traffic for cloudConnectionIdleSecs is closed; the gateway's stays", async (t) => {
  const rig = await edgeRig(t, { children: ['c1', 'c2'], idleSecs: 1 });
  await rig.append(['c1', 'c2', 'gw']);
  rig.start();
  await until('delivered', () => rig.hub.telemetry.length >= 3);
  t.ok(rig.hub.isConnected('c1') || rig.hub.isConnected('c2'), 'children connected while they send');
  await until('children closed when idle', () => !rig.hub.isConnected('c1') && !rig.hub.isConnected('c2'), 10_000);
  t.ok(rig.hub.isConnected('gw'), "the gateway's own connection stays");
  await rig.append(['c1']);
  await until('a new record opens the connection again', () => rig.hub.telemetry.length >= 4);
  t.equal(rig.hub.operations('c1', 'connect'), 2);
});

t.test('connects are paced at cloudConnectsPerSecMax', async (t) => {
  const children = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
  const rig = await edgeRig(t, { children, connectsPerSecMax: 4 });
  await rig.append(children);
  const firstAtMs = new Map<string, number>();
  rig.hub.onTelemetry((r) => firstAtMs.has(r.deviceId) || firstAtMs.set(r.deviceId, performance.now()));
  rig.start();
  await until('one message of each', () => children.every((id) => firstAtMs.has(id)));
  const times = [...firstAtMs.values()];
  const spanMs = Math.max(...times) - Math.min(...times);
  // Six connects at four a second cannot all be done in less than five intervals of 250 ms.
  t.ok(spanMs >= 1_150, `first messages spread over ${Math.round(spanMs)} ms`);
  for (const id of children) t.equal(rig.hub.operations(id, 'connect'), 1, `${id}: one connect`);
});

t.test('a child whose link fails is retried with its own backoff while the others drain (edgeHub #5364)', async (t) => {
  let proxy: FaultProxy | null = null;
  const rig = await edgeRig(t, {
    children: ['c1', 'c2', 'flaky'],
    createLink: (identity, hub, credentials) =>
      identity === 'flaky'
        ? linkVia(identity, hub, credentials, `localhost:${proxy!.port}`)
        : createIdentityLink({ identity, credentials, ca: hub.ca.cert, wallMs: () => Date.now() }),
  });
  proxy = await FaultProxy.start({ targetPort: rig.hub.port });
  t.teardown(() => proxy!.close());
  proxy.refuse();
  const who = ['flaky', 'c1', 'c2'];
  await rig.append(Array.from({ length: 300 }, (_, i) => who[i % 3]!));
  rig.start();
  await until('the others delivered', () => bodiesOf(rig.hub, 'c1').length + bodiesOf(rig.hub, 'c2').length >= 200);
  await until('the upstream cursor past the unreachable child', () => rig.upstream.ackedSeq() === 300);
  t.equal(bodiesOf(rig.hub, 'flaky').length, 0, 'nothing of the unreachable child yet');
  t.equal(rig.edge.status().parked, 1, 'its records parked in the holding lane');
  proxy.pass();
  await until('the child delivered once its link is back', () => bodiesOf(rig.hub, 'flaky').length >= 100);
  t.same(
    bodiesOf(rig.hub, 'flaky'),
    Array.from({ length: 100 }, (_, i) => 1 + 3 * i),
    'all, in stored order',
  );
  await until('the holding lane drained', () => rig.held.ackedSeq() === rig.held.lastDurableSeq());
  t.equal(rig.dead.lastDurableSeq(), 0, 'nothing dead-lettered');
  t.equal(rig.edge.status().parked, 0);
});

t.test('pacing timers that fire late do not stretch the pacing: the missed slots connect at once', async (t) => {
  // The pool's clock only moves when told: "late" is exactly the 350 ms the test advances it by.
  const clock = new ManualClock({ wallMs: Date.now(), monoMs: 1_000_000 });
  const children = ['p1', 'p2', 'p3', 'p4', 'p5', 'p6'];
  const rig = await edgeRig(t, { children, connectsPerSecMax: 10, clock });
  await rig.append(children);
  rig.start();
  await until('the first connect', () => rig.edge.status().connections === 1);
  t.equal(rig.edge.status().connects, 1, 'one connect per 100 ms slot while the clock stands still');
  clock.advance(350);
  await until('the pacing timer ran', () => rig.edge.status().connects > 1);
  t.equal(rig.edge.status().connects, 4, 'the slots at 100, 200 and 300 ms, and not the one at 400 ms');
});

t.test('an identity in a long backoff does not hold back the connect of one wanted after it', async (t) => {
  let proxy: FaultProxy | null = null;
  const rig = await edgeRig(t, {
    children: ['c1', 'flaky'],
    backoff: { baseMs: 60_000, maxMs: 60_000 },
    createLink: (identity, hub, credentials) =>
      identity === 'flaky'
        ? linkVia(identity, hub, credentials, `localhost:${proxy!.port}`)
        : createIdentityLink({ identity, credentials, ca: hub.ca.cert, wallMs: () => Date.now() }),
  });
  proxy = await FaultProxy.start({ targetPort: rig.hub.port });
  t.teardown(() => proxy!.close());
  proxy.refuse();
  await rig.append(['flaky']);
  rig.start();
  await until('the unreachable child in its backoff', () => rig.edge.status().backoff === 1);
  await rig.append(['c1']);
  // Well inside the 60 s backoff whose timer was armed first.
  await until('the child wanted later delivered', () => bodiesOf(rig.hub, 'c1').length === 1, 10_000);
  t.equal(rig.edge.status().backoff, 1, 'the other still waits out its own backoff');
});

t.test('no more than CLOUD_CONNECTS_INFLIGHT_MAX connects at once, however slow the link', async (t) => {
  // Each connect takes 400 ms longer (a slow cellular link): at 100 a second all 12 would be under way at once.
  const children = Array.from({ length: 12 }, (_, i) => `s${i}`);
  let underWay = 0;
  let peak = 0;
  const rig = await edgeRig(t, {
    children,
    connectsPerSecMax: 100,
    createLink: (identity, hub, credentials) => {
      const link = createIdentityLink({ identity, credentials, ca: hub.ca.cert, wallMs: () => Date.now() });
      const connect = link.transport.connect.bind(link.transport);
      link.transport.connect = async () => {
        underWay += 1;
        peak = Math.max(peak, underWay);
        try {
          await sleep(SLOW_CONNECT_MS);
          await connect();
        } finally {
          underWay -= 1;
        }
      };
      return link;
    },
  });
  await rig.append(children);
  rig.start();
  await until('one message of each', () => children.every((id) => bodiesOf(rig.hub, id).length === 1), 20_000);
  t.ok(peak <= CLOUD_CONNECTS_INFLIGHT_MAX, `at most ${CLOUD_CONNECTS_INFLIGHT_MAX} connects under way (peak ${peak})`);
  t.ok(peak > 1, 'yet more than one at a time');
  for (const id of children) t.equal(rig.hub.operations(id, 'connect'), 1, `${id}: one connect`);
});

t.test('connect slots go to the longest waiting: children failing fast do not starve one wanted later', async (t) => {
  const proxies = new Map<string, FaultProxy>();
  const flaky = ['f1', 'f2'];
  const rig = await edgeRig(t, {
    children: ['c1', ...flaky],
    // Backoffs shorter than the pacing interval (50 ms): the failing children are due again at every slot.
    backoff: { baseMs: 10, maxMs: 20 },
    connectsPerSecMax: 20,
    createLink: (identity, hub, credentials) =>
      flaky.includes(identity)
        ? linkVia(identity, hub, credentials, `localhost:${proxies.get(identity)!.port}`)
        : createIdentityLink({ identity, credentials, ca: hub.ca.cert, wallMs: () => Date.now() }),
  });
  for (const id of flaky) {
    const proxy = await FaultProxy.start({ targetPort: rig.hub.port });
    t.teardown(() => proxy.close());
    proxy.refuse();
    proxies.set(id, proxy);
  }
  await rig.append(flaky);
  rig.start();
  await until('both failing children retried', () => rig.edge.status().connects >= 4);
  const connectsBefore = rig.edge.status().connects;
  await rig.append(['c1']);
  await until('the child wanted later delivered', () => bodiesOf(rig.hub, 'c1').length === 1, 10_000);
  const between = rig.edge.status().connects - connectsBefore - 1;
  // The failing children may take the slots they were due for before the new record was read (a few, on a
  // loaded machine); without the order it was every slot, and the child waited for as long as they failed.
  t.ok(between <= 3 * flaky.length, `${between} connects of the failing children before the child's own`);
});
