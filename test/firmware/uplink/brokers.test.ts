import t from 'tap';
import mqtt from 'mqtt';
import { setTimeout as sleep } from 'node:timers/promises';
import { AedesBroker, Mosquitto } from '../../support/brokers.js';

/** The test brokers are real: a message published at one client reaches another through them. */

async function roundTrip(url: string, topic: string): Promise<string> {
  const sub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  const pub = await mqtt.connectAsync(url, { reconnectPeriod: 0 });
  try {
    const got = new Promise<string>((resolve) => sub.on('message', (_t, p) => resolve(p.toString())));
    await sub.subscribeAsync(topic, { qos: 1 });
    await pub.publishAsync(topic, 'ping', { qos: 1 });
    return await got;
  } finally {
    await Promise.all([sub.endAsync(true), pub.endAsync(true)]);
  }
}

t.test('mosquitto starts on a free loopback port and routes messages', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  t.match(await broker.config(), /listener \d+ 127\.0\.0\.1/);
  t.equal(await roundTrip(broker.url, 'a/b'), 'ping');
});

t.test('mosquitto keeps a persistent session across a restart', async (t) => {
  const broker = await Mosquitto.start({ persistence: true });
  t.teardown(() => broker.stop());
  const opts = { clientId: 'persistent-sub', clean: false, reconnectPeriod: 0 } as const;
  const sub = await mqtt.connectAsync(broker.url, opts);
  await sub.subscribeAsync('q/#', { qos: 1 });
  await sub.endAsync();
  const pub = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
  for (let i = 0; i < 10; i += 1) await pub.publishAsync('q/x', String(i), { qos: 1 });
  await pub.endAsync();
  await broker.restart();
  // The listener must be in place before CONNACK: the broker sends the queue right after it.
  const back = mqtt.connect(broker.url, { ...opts, manualConnect: true });
  const got: string[] = [];
  back.on('message', (_t, p) => got.push(p.toString()));
  back.connect();
  for (let waited = 0; got.length < 10 && waited < 5_000; waited += 20) await sleep(20);
  await back.endAsync(true);
  t.same(got, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'], 'queued messages survived the restart');
});

t.test('aedes runs in-process on an ephemeral port', async (t) => {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  t.ok(broker.port > 0);
  t.equal(await roundTrip(broker.url, 'c/d'), 'ping');
});
