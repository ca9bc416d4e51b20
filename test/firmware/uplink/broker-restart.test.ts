import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { RingLog } from '../../../firmware/store/log.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { tempDir } from '../../support/tmp.js';
import { until } from '../../support/until.js';

/**
 * The broker restarts mid-drain (mosquitto with persistence): what it acknowledged before going down is
 * still queued for the subscriber afterwards, what it had not is sent again by the pump, and the drain
 * carries on by itself.
 */
t.test('mosquitto restart with persistence mid-drain loses nothing', async (t) => {
  const broker = await Mosquitto.start({ persistence: true });
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-r/+/telemetry');
  t.teardown(() => sub.close());
  const log = await RingLog.open({ dir: tempDir(t), ttlSecs: 0 });
  t.teardown(() => log.close());
  const lane = await log.lane('telemetry');
  const total = 3_000;
  await Promise.all(Array.from({ length: total }, (_, i) => lane.append({ body: Buffer.from(String(i + 1)) })));
  const transport = createMqttTransport({ url: broker.url, gatewayId: 'gw-r', connectTimeoutMs: 1_000 });
  const pump = new Pump({
    gatewayId: 'gw-r',
    transport,
    lanes: [{ lane }],
    // The cap (about 1,000 small messages/s) keeps the drain going long enough to restart in the middle.
    bytesPerSecMax: 4_000,
    backoff: { baseMs: 50, maxMs: 300 },
  });
  pump.start();
  t.teardown(() => pump.stop());
  for (let waited = 0; sub.values.length < 500 && waited < 10_000; waited += 10) await sleep(10);
  t.ok(sub.values.length < total, `restarting mid-drain (${sub.values.length} of ${total} delivered)`);
  const connectsBefore = pump.status().connects;
  await broker.restart();
  t.ok(await sub.waitForDistinct(total, 30_000), 'every message arrived');
  // Two windows replay at the subscriber: the pump's (100 publishes unacknowledged by the broker) and the
  // broker's own, which redelivers after its restart what it had sent the subscriber without a PUBACK yet.
  t.same(checkDelivery(sub.values, total, 2 * 100).problems, [], 'in order, replays only within the two windows');
  t.ok(pump.status().connects > connectsBefore, 'the pump reconnected by itself');
  // The subscriber can see the last messages before the pump has their PUBACKs: the broker forwards first, or an
  // outage took the PUBACK and the pump is in backoff, to send them again. The cursor must still catch up by itself.
  await until('the store cursor to catch up', () => lane.ackedSeq() === lane.lastDurableSeq());
  t.equal(lane.ackedSeq(), lane.lastDurableSeq(), 'the store cursor caught up');
  await pump.stop();
  t.equal(lane.ackedSeq(), lane.lastDurableSeq(), 'stopping kept the cursor where it was');
});
