import t from 'tap';
import type { CloudMessage, CloudMethodCall } from '../../../../firmware/uplink/azure-downlink.js';
import { EdgeCloudRelay, type LocalChildEvent, type LocalChildren } from '../../../../firmware/uplink/edge/cloud.js';
import {
  C2D_PENDING_MAX,
  C2D_PENDING_PER_IDENTITY_MAX,
  CLOUD_METHOD_CALLS_PENDING_MAX,
} from '../../../../firmware/uplink/edge/limits.js';

/**
 * The relay's named limits, at their edges: what IoT Hub sends past them is held back (C2D: left
 * un-acknowledged, so IoT Hub sends it again) or answered at once (methods: 429), and counted. The local hub
 * here is a small in-memory one: the limits are the relay's own, whatever the hub does.
 */

class LocalHub implements LocalChildren {
  readonly subscribed = new Set<string>();
  readonly delivered: string[] = [];
  private listener: ((event: LocalChildEvent) => void) | null = null;
  connected = () => [];
  isSubscribed = (id: string, filter: string) => this.subscribed.has(`${id} ${filter}`);
  deliver = async (id: string, topic: string) => void this.delivered.push(`${id} ${topic}`);
  invoke = () => new Promise<never>(() => {});
  onChange(listener: (event: LocalChildEvent) => void) {
    this.listener = listener;
    return () => (this.listener = null);
  }

  subscribe(id: string, filter: string): void {
    this.subscribed.add(`${id} ${filter}`);
    this.listener?.({ id, kind: 'subscribed', filter });
  }
}

const pool = { retain: () => {}, release: () => {} };

function message(deviceId: string, n: number, acks: number[]): CloudMessage {
  return {
    topic: `devices/${deviceId}/messages/devicebound/%24.mid=${n}`,
    payload: Buffer.from(String(n)),
    ack: () => void acks.push(n),
  };
}

t.test('C2D held for a child past C2D_PENDING_PER_IDENTITY_MAX is left for IoT Hub to send again', async (t) => {
  const relay = new EdgeCloudRelay(pool, 'gw', () => {});
  const local = new LocalHub();
  relay.attach(local);
  const acks: number[] = [];
  const sink = relay.sinkFor('c1');
  for (let n = 1; n <= C2D_PENDING_PER_IDENTITY_MAX + 1; n += 1) sink.onMessage(message('c1', n, acks));
  sink.onMessage({ ...message('other', 0, acks), topic: 'devices/other/messages/devicebound/' });
  t.match(relay.status(), { c2dPending: C2D_PENDING_PER_IDENTITY_MAX, c2dDeferred: 1, c2dRefused: 1 });
  t.same(acks, [], 'none acknowledged before the child has them');
  local.subscribe('c1', 'devices/c1/messages/devicebound/#');
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(local.delivered.length, C2D_PENDING_PER_IDENTITY_MAX, 'the held ones delivered once the child listens');
  t.same(
    acks,
    Array.from({ length: C2D_PENDING_PER_IDENTITY_MAX }, (_, i) => i + 1),
    'acknowledged in order',
  );
  t.match(relay.status(), { c2dPending: 0, c2dDelivered: C2D_PENDING_PER_IDENTITY_MAX });
});

t.test('C2D held across identities stops at C2D_PENDING_MAX', async (t) => {
  const relay = new EdgeCloudRelay(pool, 'gw', () => {});
  relay.attach(new LocalHub());
  const children = Math.ceil(C2D_PENDING_MAX / C2D_PENDING_PER_IDENTITY_MAX) + 1;
  for (let c = 0; c < children; c += 1) {
    const sink = relay.sinkFor(`c${c}`);
    for (let n = 0; n < C2D_PENDING_PER_IDENTITY_MAX; n += 1) sink.onMessage(message(`c${c}`, n, []));
  }
  const offered = children * C2D_PENDING_PER_IDENTITY_MAX;
  t.match(relay.status(), { c2dPending: C2D_PENDING_MAX, c2dDeferred: offered - C2D_PENDING_MAX });
});

t.test('method calls past CLOUD_METHOD_CALLS_PENDING_MAX are answered 429 at once; bad names 400', async (t) => {
  const relay = new EdgeCloudRelay(pool, 'gw', () => {});
  relay.attach(new LocalHub());
  const answers: number[] = [];
  const call = (name: string, rid: number): CloudMethodCall => ({
    name,
    rid: String(rid),
    payload: Buffer.from('null'),
    respond: async (status) => void answers.push(status),
  });
  const sink = relay.sinkFor('c1');
  for (let i = 0; i < CLOUD_METHOD_CALLS_PENDING_MAX + 1; i += 1) sink.onMethod(call('wait', i));
  sink.onMethod(call('a/#', 0));
  await new Promise((resolve) => setImmediate(resolve));
  t.same(answers, [429, 400], 'the one over the limit and the bad name, at once');
  t.match(relay.status(), { methodsPending: CLOUD_METHOD_CALLS_PENDING_MAX, methodsRefused: 2 });
});
