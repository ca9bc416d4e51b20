import t, { type Test } from 'tap';
import { createIdentityLink } from '../../../../firmware/uplink/edge/link.js';
import { FaultProxy } from '../../../support/fault-proxy.js';
import { bodiesOf, edgeRig, linkVia, until, type EdgeRig } from '../../../support/edge-rig.js';

/**
 * The holding lane without head-of-line blocking: an identity that stays unreachable with more copies in
 * the holding lane than its read-ahead holds does not keep another identity's copies behind them from going
 * up once that one's connection is back; each identity's records arrive in stored order, none lost.
 */

/** Records read ahead per lane: far fewer than the unreachable child's copies. */
const READ_AHEAD = 16;
const A_FIRST = 100;

interface Held {
  rig: EdgeRig;
  proxies: Map<string, FaultProxy>;
  /** Bodies appended per identity, in stored order. */
  stored: Map<string, number[]>;
  append(devices: string[]): Promise<void>;
}

/** Children "a" and "b" behind proxies that refuse them, "c" reached directly; a small read-ahead. */
async function heldRig(t: Test): Promise<Held> {
  const proxies = new Map<string, FaultProxy>();
  const rig = await edgeRig(t, {
    children: ['a', 'b', 'c'],
    readAheadRecordsMax: READ_AHEAD,
    // Connects paced far faster than the unreachable children's backoff retries them: they must not take
    // every connect slot from "c" (the pool paces connects in the order identities were first wanted).
    connectsPerSecMax: 200,
    backoff: { baseMs: 100, maxMs: 200 },
    createLink: (identity, hub, credentials) =>
      proxies.has(identity)
        ? linkVia(identity, hub, credentials, `localhost:${proxies.get(identity)!.port}`)
        : createIdentityLink({ identity, credentials, ca: hub.ca.cert, wallMs: () => Date.now() }),
  });
  for (const id of ['a', 'b']) {
    const proxy = await FaultProxy.start({ targetPort: rig.hub.port });
    t.teardown(() => proxy.close());
    proxy.refuse();
    proxies.set(id, proxy);
  }
  const stored = new Map<string, number[]>([
    ['a', []],
    ['b', []],
    ['c', []],
  ]);
  let n = 0;
  const append = async (devices: string[]) => {
    for (const id of devices) stored.get(id)!.push((n += 1));
    await rig.append(devices);
  };
  return { rig, proxies, stored, append };
}

/** "a"'s 100 records parked first, then 20 each of b, a, c in turn: b's copies lie behind a's 100. */
async function parkBoth(held: Held): Promise<void> {
  const { rig } = held;
  await held.append(Array.from({ length: A_FIRST }, () => 'a'));
  rig.start();
  await until("a's records parked", () => rig.held.lastDurableSeq() >= A_FIRST);
  await held.append(Array.from({ length: 60 }, (_, i) => ['b', 'a', 'c'][i % 3]!));
  await until("b's and a's later records parked", () => rig.held.lastDurableSeq() >= A_FIRST + 40);
  await until('c delivered', () => bodiesOf(rig.hub, 'c').length >= 20);
}

t.test('a child back up gets its held records while another stays unreachable behind a full read-ahead', async (t) => {
  const held = await heldRig(t);
  const { rig, stored } = held;
  await parkBoth(held);
  t.equal(rig.edge.status().parked, 2, 'both unreachable children parked');
  held.proxies.get('b')!.pass();
  await until("b's held records delivered", () => bodiesOf(rig.hub, 'b').length >= 20);
  t.same(bodiesOf(rig.hub, 'b'), stored.get('b'), 'b: all, in stored order, while a is still down');
  t.equal(bodiesOf(rig.hub, 'a').length, 0, 'a: nothing yet');
  t.ok(rig.held.ackedSeq() < A_FIRST, 'the holding lane is not acknowledged past what a still has there');
  await held.append(['b', 'a', 'b', 'a', 'c']);
  await until("b's new records delivered", () => bodiesOf(rig.hub, 'b').length >= 22);
  t.same(bodiesOf(rig.hub, 'b'), stored.get('b'), 'b: its new records after its held ones');
  held.proxies.get('a')!.pass();
  await until("a's records delivered", () => bodiesOf(rig.hub, 'a').length >= stored.get('a')!.length);
  t.same(bodiesOf(rig.hub, 'a'), stored.get('a'), 'a: all, in stored order, once its link is back');
  t.same(bodiesOf(rig.hub, 'c'), stored.get('c'), 'c: all, in stored order');
  await until('the holding lane acknowledged to its end', () => rig.held.ackedSeq() === rig.held.lastDurableSeq());
  await until('the upstream lane too', () => rig.upstream.ackedSeq() === rig.upstream.lastDurableSeq());
  t.equal(rig.edge.status().parked, 0, 'nobody parked any more');
  t.equal(rig.dead.lastDurableSeq(), 0, 'nothing dead-lettered');
});

/** The identity's arrivals since `from` are in stored order, and with those before they cover `all`. */
function inOrderSince(t: Test, held: Held, id: string, from: number): void {
  const arrivals = held.rig.hub.telemetry.map((r, i) => ({ id: r.deviceId, body: Number(r.body.toString()), i }));
  const before = arrivals.filter((r) => r.id === id && r.i < from).map((r) => r.body);
  const after = arrivals.filter((r) => r.id === id && r.i >= from).map((r) => r.body);
  const ascending = (values: number[]) => values.every((v, i) => i === 0 || values[i - 1]! < v);
  t.ok(ascending(before), `${id}: in stored order before the restart`);
  t.ok(ascending(after), `${id}: in stored order after the restart`);
  t.same(
    [...new Set([...before, ...after])].sort((x, y) => x - y),
    held.stored.get(id),
    `${id}: none lost`,
  );
}

t.test('a restart while a child is deferred keeps each identity in stored order', async (t) => {
  const held = await heldRig(t);
  const { rig, stored } = held;
  await parkBoth(held);
  held.proxies.get('b')!.pass();
  await until("b's held records delivered", () => bodiesOf(rig.hub, 'b').length >= 20);
  t.ok(rig.held.ackedSeq() < A_FIRST, "the holding lane held before a's copies: b's go again after the restart");
  await rig.restart();
  const from = rig.hub.telemetry.length;
  await held.append(['b', 'a', 'c', 'b', 'a', 'c']);
  await until("b's new records delivered", () => bodiesOf(rig.hub, 'b').includes(stored.get('b')!.at(-1)!));
  held.proxies.get('a')!.pass();
  await until("a's records delivered", () => bodiesOf(rig.hub, 'a').includes(stored.get('a')!.at(-1)!));
  await until('c delivered', () => bodiesOf(rig.hub, 'c').includes(stored.get('c')!.at(-1)!));
  for (const id of ['a', 'b', 'c']) inOrderSince(t, held, id, from);
  await until('the holding lane acknowledged to its end', () => rig.held.ackedSeq() === rig.held.lastDurableSeq());
  t.equal(rig.edge.status().parked, 0, 'nobody parked any more');
});

t.test('a deferred child that IoT Hub refuses has its held records dead-lettered, in stored order', async (t) => {
  const held = await heldRig(t);
  const { rig, stored } = held;
  await parkBoth(held);
  held.proxies.get('b')!.pass();
  await until("b's held records delivered", () => bodiesOf(rig.hub, 'b').length >= 20);
  t.ok(rig.held.ackedSeq() < A_FIRST, "the holding lane held before a's copies");
  rig.hub.deleteDevice('a');
  held.proxies.get('a')!.pass();
  const count = stored.get('a')!.length;
  await until("a's records dead-lettered", () => rig.pump.status().deadLetters.total >= count);
  const letters = await rig.dead.read(1, { recordsMax: 1000 });
  t.same(
    letters.map((r) => Number(r.body.toString())),
    stored.get('a'),
    'all of them, in stored order',
  );
  t.same(new Set(letters.map((r) => r.properties.$deadLetterReason)), new Set(['identity-refused']), 'refused');
  t.equal(bodiesOf(rig.hub, 'a').length, 0, 'none went up');
  t.same(bodiesOf(rig.hub, 'b'), stored.get('b'), 'b: each once, in stored order');
  await until('the holding lane acknowledged to its end', () => rig.held.ackedSeq() === rig.held.lastDurableSeq());
  t.equal(rig.edge.status().parked, 0, 'nobody parked any more');
});
