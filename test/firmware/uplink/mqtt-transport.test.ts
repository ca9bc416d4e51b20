import t from 'tap';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { UplinkError, type UplinkMessage } from '../../../firmware/uplink/types.js';
import { Mosquitto } from '../../support/brokers.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { uplinkMessage } from '../../support/uplink-message.js';

/**
 * The transport contract (firmware/uplink/types.ts) for mqtt under refusals, against real mosquitto: a
 * refusal is an answer, not a loss; every loss is reported once; no publish outlives its connection.
 */

function message(seq: number, deviceId: string, bytes = 1): UplinkMessage {
  return uplinkMessage('gw', seq, deviceId, Buffer.alloc(bytes, 0x31));
}

/**
 * A second onDisconnect would come from the socket's own close event, which follows the first loss within
 * a few event-loop turns on loopback; this is the window a wrong second report gets to show itself.
 */
const SECOND_LOSS_GRACE_MS = 200;

async function settled(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => 'resolved',
    (err: unknown) => err,
  );
}

/** Everything a client can do wrong at once: a topic the ACL refuses, a body over message_size_limit. */
async function strictBroker(t: { teardown(fn: () => unknown): void }) {
  const broker = await Mosquitto.start({
    acl: ['topic write outpost/gw/good/#'],
    extraConfig: ['message_size_limit 1000', 'max_queued_messages 1000'],
  });
  t.teardown(() => broker.stop());
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${proxy.port}`, gatewayId: 'gw', keepaliveSecs: 600 });
  const losses: Error[] = [];
  transport.onDisconnect((cause) => losses.push(cause));
  t.teardown(() => transport.destroy());
  await transport.connect();
  return { proxy, transport, losses };
}

t.test('a refused publish (PUBACK 0x87) rejects REFUSED, reports no loss, and the connection goes on', async (t) => {
  const { transport, losses } = await strictBroker(t);
  const refused = await settled(transport.publish(message(1, 'bad')));
  t.ok(refused instanceof UplinkError && refused.code === 'REFUSED', 'REFUSED');
  t.same((refused as UplinkError).refusal, { reason: 'mqtt5-0x87-not-authorized', permanent: true });
  t.equal(await settled(transport.publish(message(2, 'good'))), 'resolved', 'the next publish is acknowledged');
  t.equal(await transport.probe(2_000), true, 'and the broker still answers pings');
  t.same(losses, [], 'no onDisconnect');
});

t.test('one onDisconnect per loss, and every publish in flight rejects, on a cut', async (t) => {
  const { proxy, transport, losses } = await strictBroker(t);
  proxy.blackhole();
  const inflight = [1, 2, 3].map((seq) => settled(transport.publish(message(seq, 'good'))));
  await tick();
  proxy.cut();
  const outcomes = await Promise.all(inflight);
  t.ok(
    outcomes.every((o) => o instanceof UplinkError && o.code === 'DISCONNECTED'),
    'all three rejected DISCONNECTED',
  );
  await sleep(SECOND_LOSS_GRACE_MS);
  t.equal(losses.length, 1, 'exactly one onDisconnect');
  t.equal(await transport.probe(100), false, 'a probe on no connection says no at once');
});

t.test('a PUBACK mqtt.js cannot parse (over message_size_limit) is one loss, and the publish rejects', async (t) => {
  const { transport, losses } = await strictBroker(t);
  const tooBig = settled(transport.publish(message(1, 'good', 1_500)));
  const behind = settled(transport.publish(message(2, 'good')));
  const [first, second] = await Promise.all([tooBig, behind]);
  const why = (first as Error).message;
  t.ok(first instanceof UplinkError && first.code === 'DISCONNECTED', `the unacknowledgeable one rejects: ${why}`);
  t.ok(second instanceof UplinkError && second.code === 'DISCONNECTED', 'so does the one behind it');
  // The socket closes after the parse error: both events must come out as one loss.
  await sleep(SECOND_LOSS_GRACE_MS);
  t.equal(losses.length, 1, 'exactly one onDisconnect');
  t.match(losses[0]!.message, /unusable: Invalid puback reason code/);
});
