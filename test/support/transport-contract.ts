import { setTimeout as sleep } from 'node:timers/promises';
import type { Test } from 'tap';
import { UplinkError, type UplinkMessage, type UplinkTransport } from '../../firmware/uplink/types.js';
import type { FaultProxy } from './fault-proxy.js';
import { until } from './until.js';

/**
 * A transport as the pump sees it (the rules in firmware/uplink/types.ts), written down once and run against
 * every transport and broker pair (test/firmware/uplink/transport-contract.test.ts). A third transport gets
 * this checklist for free; a rule one transport breaks shows up here, not as a stalled drain in the field.
 */
export interface TransportRig {
  /** Not yet connected; its connection runs through `proxy`. */
  transport: UplinkTransport;
  proxy: FaultProxy;
  /** Bodies the broker has accepted from this transport, in arrival order. */
  received(): string[];
  /** Builds the transport's messages (gateway id, topic or device naming the broker expects). */
  message(seq: number, deviceId?: string): UplinkMessage;
  /** A message this broker refuses without ending the connection; null where the protocol cannot refuse one. */
  refusable: { message: UplinkMessage; reason: string } | null;
}

export type RigFactory = (t: Test, id: string) => Promise<TransportRig>;

/**
 * How long the suite watches for something that must NOT happen (a retry, a second onDisconnect): longer
 * than mqtt.js's default reconnect period (1 s) and the SDK's first retry, the loops a transport must not run.
 */
const ABSENCE_WATCH_MS = 1_500;
/** A publish that settles later than this after its connection died is hanging, ms. */
const SETTLE_AFTER_LOSS_MS_MAX = 10_000;
/** A probe's wait for its round trip; no answer can come through a black hole, so it always runs out, ms. */
const PROBE_TIMEOUT_MS = 300;
/** Publishes issued at once in the ordering case: several TCP writes and PUBACK batches. */
const ORDERED_PUBLISHES = 200;

type Settled = 'resolved' | Error;

async function settled(promise: Promise<unknown>): Promise<Settled> {
  return promise.then(
    () => 'resolved' as const,
    (err: unknown) => err as Error,
  );
}

/** Settles or fails by name: a publish that never settles would otherwise hang the test until tap kills it. */
async function settledWithin(promises: Promise<unknown>[], what: string): Promise<Settled[]> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} did not settle in ${SETTLE_AFTER_LOSS_MS_MAX} ms`)),
      SETTLE_AFTER_LOSS_MS_MAX,
    );
  });
  try {
    return await Promise.race([Promise.all(promises.map(settled)), hang]);
  } finally {
    clearTimeout(timer);
  }
}

const isUplinkError = (o: Settled): boolean => o instanceof UplinkError;

interface Watched {
  rig: TransportRig;
  losses: Error[];
}

async function connected(t: Test, makeRig: RigFactory, id: string): Promise<Watched> {
  const rig = await makeRig(t, id);
  const losses: Error[] = [];
  rig.transport.onDisconnect((cause) => losses.push(cause));
  t.teardown(() => rig.transport.destroy());
  await rig.transport.connect();
  return { rig, losses };
}

/** `noRefusal`: why this protocol cannot refuse one message (the refusal case is then skipped, saying so). */
export async function transportContract(t: Test, name: string, makeRig: RigFactory, noRefusal?: string): Promise<void> {
  const cases: Array<[string, (t: Test, id: string, makeRig: RigFactory) => Promise<void>]> = [
    ['connect() makes one attempt: a refused connection rejects and is not retried', oneAttempt],
    ['after a loss the transport does not reconnect by itself; the loss is reported once', noReconnect],
    ['publishes in flight reject, never hang, when the connection drops', rejectOnDrop],
    ['publishes in flight reject when destroy() is called', rejectOnDestroy],
    ['one onDisconnect per loss, across reconnects of one transport', oneReportPerLoss],
    ['destroy() and close() resolve at any time and more than once; connect() works after them', idempotent],
    ['publishes reach the broker and are acknowledged in call order', inOrder],
    ['probe() never throws and never tears the connection down, answered or not', probeLeavesConnection],
    ['a refused message rejects REFUSED with its reason, and the connection stays up', refusalKeepsConnection],
  ];
  await t.test(`${name}: the transport contract the pump relies on`, async (t) => {
    let n = 0;
    for (const [title, run] of cases) {
      n += 1;
      const skip = run === refusalKeepsConnection && noRefusal !== undefined ? noRefusal : false;
      await t.test(title, { skip }, (t) => run(t, `c${n}`, makeRig));
    }
  });
}

async function oneAttempt(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const rig = await makeRig(t, id);
  t.teardown(() => rig.transport.destroy());
  rig.proxy.refuse();
  const outcome = await settledWithin([rig.transport.connect()], 'connect() to a refusing link');
  t.ok(isUplinkError(outcome[0]!), `connect() rejects with an UplinkError: ${String(outcome[0])}`);
  await sleep(ABSENCE_WATCH_MS);
  t.equal(rig.proxy.acceptedCount, 1, 'one TCP connection attempt, no retry');
}

async function noReconnect(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const { rig, losses } = await connected(t, makeRig, id);
  rig.proxy.cut();
  await until('the loss to be reported', () => losses.length > 0);
  await sleep(ABSENCE_WATCH_MS);
  t.equal(rig.proxy.acceptedCount, 1, 'no connection after the loss but the first');
  t.equal(losses.length, 1, 'reported once');
  t.ok(losses[0] instanceof Error, `with its cause: ${losses[0]?.message}`);
}

async function rejectOnDrop(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const { rig, losses } = await connected(t, makeRig, id);
  rig.proxy.blackhole();
  const inflight = [1, 2, 3].map((seq) => rig.transport.publish(rig.message(seq)));
  rig.proxy.cut();
  const outcomes = await settledWithin(inflight, 'publishes in flight on a cut connection');
  t.ok(outcomes.every(isUplinkError), `all rejected: ${outcomes.map(String).join('; ')}`);
  await until('the loss to be reported', () => losses.length > 0);
  const after = await settledWithin([rig.transport.publish(rig.message(4))], 'a publish after the loss');
  t.ok(isUplinkError(after[0]!), 'a publish with no connection rejects at once');
}

async function rejectOnDestroy(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const { rig } = await connected(t, makeRig, id);
  rig.proxy.blackhole();
  const inflight = [1, 2, 3].map((seq) => rig.transport.publish(rig.message(seq)));
  await rig.transport.destroy();
  const outcomes = await settledWithin(inflight, 'publishes in flight on a destroyed transport');
  t.ok(outcomes.every(isUplinkError), `all rejected: ${outcomes.map(String).join('; ')}`);
}

async function oneReportPerLoss(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const { rig, losses } = await connected(t, makeRig, id);
  rig.proxy.cut();
  await until('the first loss to be reported', () => losses.length >= 1);
  await rig.transport.connect();
  rig.proxy.cut();
  await until('the second loss to be reported', () => losses.length >= 2);
  await sleep(ABSENCE_WATCH_MS);
  t.equal(losses.length, 2, 'two losses, two reports');
}

async function idempotent(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const rig = await makeRig(t, id);
  const losses: Error[] = [];
  rig.transport.onDisconnect((cause) => losses.push(cause));
  t.teardown(() => rig.transport.destroy());
  await rig.transport.destroy();
  await rig.transport.close();
  t.same(losses, [], 'nothing to report before a connection');
  await rig.transport.connect();
  const teardowns = [rig.transport.close(), rig.transport.close(), rig.transport.destroy()];
  await settledWithin(teardowns, 'close, close, destroy at once');
  await rig.transport.destroy();
  t.equal(losses.length, 1, `the torn-down connection is reported once: ${losses.map((l) => l.message)}`);
  await rig.transport.connect();
  t.equal(await settled(rig.transport.publish(rig.message(1))), 'resolved', 'the next connect() works');
  await until('the message at the broker', () => rig.received().length === 1);
}

async function inOrder(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const { rig, losses } = await connected(t, makeRig, id);
  const seqs = Array.from({ length: ORDERED_PUBLISHES }, (_, i) => i + 1);
  const outcomes = await settledWithin(
    seqs.map((s) => rig.transport.publish(rig.message(s))),
    'publishes',
  );
  t.ok(
    outcomes.every((o) => o === 'resolved'),
    'every publish acknowledged',
  );
  await until('every message at the broker', () => rig.received().length >= seqs.length);
  t.same(rig.received(), seqs.map(String), 'in call order, each once');
  t.same(losses, [], 'no loss');
}

async function probeLeavesConnection(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const rig = await makeRig(t, id);
  t.equal(await rig.transport.probe(PROBE_TIMEOUT_MS), false, 'no connection: false');
  const losses: Error[] = [];
  rig.transport.onDisconnect((cause) => losses.push(cause));
  t.teardown(() => rig.transport.destroy());
  await rig.transport.connect();
  rig.proxy.blackhole();
  t.equal(await rig.transport.probe(PROBE_TIMEOUT_MS), false, 'a black-holed link: false');
  rig.proxy.pass();
  t.equal(await settled(rig.transport.publish(rig.message(1))), 'resolved', 'the connection is still usable');
  t.same(losses, [], 'and no loss was reported');
  t.equal(rig.proxy.acceptedCount, 1, 'on the first connection');
}

async function refusalKeepsConnection(t: Test, id: string, makeRig: RigFactory): Promise<void> {
  const { rig, losses } = await connected(t, makeRig, id);
  if (rig.refusable === null) throw new Error('the rig has no refusable message and the suite no reason why not');
  const [refused] = await settledWithin([rig.transport.publish(rig.refusable.message)], 'a refused publish');
  t.ok(refused instanceof UplinkError && refused.code === 'REFUSED', `REFUSED: ${String(refused)}`);
  t.equal((refused as UplinkError).refusal?.reason, rig.refusable.reason, 'with the reason');
  t.equal(await settled(rig.transport.publish(rig.message(1))), 'resolved', 'the next publish is acknowledged');
  await until('the next message at the broker', () => rig.received().includes('1'));
  t.same(losses, [], 'no onDisconnect');
  t.equal(rig.proxy.acceptedCount, 1, 'on the same connection');
}
