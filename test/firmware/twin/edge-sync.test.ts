import t from 'tap';
import { EDGE_TWIN_SYNCS_MAX, EdgeTwinSync } from '../../../firmware/twin/edge-sync.js';
import { TwinStore } from '../../../firmware/twin/store.js';
import type { IdentityTwins } from '../../../firmware/uplink/edge/twins.js';
import type { TwinChannel } from '../../../firmware/uplink/types.js';
import { until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/**
 * EdgeTwinSync's own rules, on the real twin store, with children's twin channels the test answers by hand
 * (the end-to-end cases with the SDK and the IoT Hub emulator are in edge-twins.test.ts): its bound on
 * syncs at once, a twin made anew in IoT Hub, and a late answer to a request the cache took over.
 */

type Props = Record<string, unknown>;

/** Requests held by all twins now, and the most there ever were. */
const inFlight = { now: 0, peak: 0 };

/** A child's twin whose GETs and PATCHes wait until the test releases them. */
class HeldTwin implements TwinChannel {
  desired: Props = { $version: 1 };
  reported: Props = { $version: 1 };
  readonly patches: Props[] = [];
  readonly waiting: Array<() => void> = [];
  hold = true;

  private async gate(): Promise<void> {
    if (!this.hold) return;
    inFlight.now += 1;
    inFlight.peak = Math.max(inFlight.peak, inFlight.now);
    await new Promise<void>((resolve) => this.waiting.push(resolve));
    inFlight.now -= 1;
  }

  async get() {
    await this.gate();
    return { desired: { ...this.desired }, reported: { ...this.reported } };
  }

  async patchReported(patch: Props) {
    await this.gate();
    this.patches.push(patch);
  }

  onDesired() {
    return () => {};
  }

  releaseAll(): void {
    for (const resolve of this.waiting.splice(0)) resolve();
  }
}

function links(twins: Map<string, HeldTwin>): IdentityTwins & { up(id: string): void } {
  let listener: (id: string) => void = () => {};
  return {
    want: () => {},
    twin: (id) => twins.get(id) ?? null,
    onLinkUp: (l) => ((listener = l), () => {}),
    up: (id) => listener(id),
  };
}

async function setup(t: Parameters<typeof tempDir>[0], ids: string[]) {
  const store = await TwinStore.open(tempDir(t, 'outpost-edge-sync-'));
  t.teardown(() => store.close());
  const twins = new Map(ids.map((id) => [id, new HeldTwin()]));
  const delivered: Array<[string, Props, number]> = [];
  const errors: string[] = [];
  const sync = new EdgeTwinSync({
    store,
    gatewayId: 'gw',
    isLinkUp: () => true,
    connected: () => [],
    onError: (err) => errors.push(err.message),
    deliver: async (id) => {
      const pending = store.undelivered(id);
      if (pending === null) return;
      delivered.push([id, pending.patch, pending.version]);
      await store.markDelivered(id, pending.version);
    },
  });
  t.teardown(() => sync.close());
  const l = links(twins);
  sync.attach(l);
  return { store, twins, delivered, errors, sync, links: l };
}

t.test(`at most EDGE_TWIN_SYNCS_MAX (${EDGE_TWIN_SYNCS_MAX}) children sync at once; all get their turn`, async (t) => {
  const ids = Array.from({ length: 10 }, (_, i) => `child-${i}`);
  const { twins, sync, links: l } = await setup(t, ids);
  for (const id of ids) l.up(id);
  const held = () => [...twins.values()].reduce((n, twin) => n + twin.waiting.length, 0);
  await until('the first syncs started', () => held() === EDGE_TWIN_SYNCS_MAX);
  t.equal(sync.status().queued, ids.length - EDGE_TWIN_SYNCS_MAX, 'the others wait, counted in status');
  while (sync.status().syncs < ids.length) {
    for (const twin of twins.values()) twin.releaseAll();
    await until('a release answered', () => held() > 0 || sync.status().syncs === ids.length);
  }
  t.equal(inFlight.peak, EDGE_TWIN_SYNCS_MAX, 'never more in flight than the bound');
  t.equal(sync.status().pulls, ids.length, 'every child read once');
});

t.test('a twin made anew in IoT Hub (its $version went back) is still delivered, as a difference', async (t) => {
  const { store, twins, delivered, sync, links: l } = await setup(t, ['child-1']);
  const twin = twins.get('child-1')!;
  twin.hold = false;
  twin.desired = { $version: 7, mode: 'eco', old: true };
  l.up('child-1');
  await until('first read', () => sync.status().syncs === 1);
  twin.desired = { $version: 2, mode: 'boost' };
  l.up('child-1');
  await until('second read', () => sync.status().syncs === 2);
  t.same(delivered, [
    ['child-1', { mode: 'eco', old: true }, 7],
    ['child-1', { old: null, mode: 'boost' }, 2],
  ]);
  t.equal(store.get('child-1').desiredVersion, 2, "the cache holds IoT Hub's version");
});

t.test('a PATCH IoT Hub answers after the cache took it over does not write it to the cache again', async (t) => {
  const { store, twins, sync } = await setup(t, ['child-1']);
  const twin = twins.get('child-1')!;
  const answer = await sync.report('child-1', { a: 1 });
  t.equal(answer, null, 'IoT Hub too slow: the cache must take the patch');
  await store.patchReported('child-1', { a: 1 });
  await store.patchReported('child-1', { a: 2 });
  twin.hold = false;
  twin.releaseAll();
  await until('the late answer and the pending patch handled', () => store.pendingOf('child-1') === null);
  t.same(twin.patches, [{ a: 1 }, { a: 2 }], 'IoT Hub got the late one, then what the cache held, in order');
  t.same(store.get('child-1').reported, { a: 2 }, 'the late answer did not write the older patch over the later one');
});
