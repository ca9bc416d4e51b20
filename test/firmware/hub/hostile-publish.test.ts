import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { RECORD_KEY } from '../../../firmware/uplink/message.js';
import { until } from '../../support/hub-fixture.js';
import { bundleForChild } from '../../support/bundle.js';
import { childOptions, connectChild, hostileHub, publishOutcome } from '../../support/hostile-hub.js';
import { tempDir } from '../../support/tmp.js';

/** Publishes a careless or hostile child may send, and what the hub does with each (issue 17). */

const SESSIONS = 40;

t.test(`${SESSIONS} sessions publishing QoS 1 the moment CONNACK arrives: all PUBACKed, none cut`, async (t) => {
  const h = await hostileHub(t, { childCount: SESSIONS, hub: { pendingPerAddressMax: SESSIONS } });
  const script = await bundleForChild(
    fileURLToPath(new URL('../../support/connack-publisher.ts', import.meta.url)),
    tempDir(t),
  );
  const specs = Array.from({ length: SESSIONS }, (_, i) => {
    const o = childOptions(h, `child-${i}`);
    return { clientId: o.clientId, username: o.username, password: o.password };
  });
  const proc = spawn(process.execPath, [script, String(h.port), JSON.stringify(specs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const [code] = (await once(proc, 'exit')) as [number];
  t.equal(code, 0, 'the sessions process finished');
  const result = JSON.parse(out.trim()) as { puback: string[]; cut: string[] };
  t.same(result.cut, [], 'no session was cut');
  t.equal(result.puback.length, SESSIONS, 'every session got its PUBACK');
  const records = await (await h.log.lane(UPSTREAM_LANE)).read(1, { recordsMax: SESSIONS + 1 });
  t.equal(records.length, SESSIONS, 'every publish is in the log');
  t.same(h.hub.status().refusals, {}, 'nothing was refused');
});

t.test('a will in CONNECT is dropped and counted: a child that vanishes publishes nothing', async (t) => {
  const h = await hostileHub(t);
  const dying = await mqtt.connectAsync(`mqtt://127.0.0.1:${h.port}`, {
    ...childOptions(h, 'child-0'),
    will: {
      topic: 'devices/child-0/messages/events/will=1',
      payload: Buffer.from('last words'),
      qos: 1,
      retain: false,
    },
  });
  t.equal(h.hub.status().refusals.will, 1, 'the will is counted at CONNECT');
  dying.stream.destroy();
  await until('child-0 gone', () => !h.hub.status().connected.includes('child-0'));
  const other = await connectChild(h, 'child-1');
  t.teardown(() => other.endAsync(true));
  // Appends start in call order: had the will been published, it would be in the log before this one.
  await other.publishAsync('devices/child-1/messages/events/', 'after', { qos: 1 });
  const records = await (await h.log.lane(UPSTREAM_LANE)).read(1, { recordsMax: 10 });
  t.same(
    records.map((r) => r.body.toString()),
    ['after'],
    'no will reached the log',
  );
});

t.test('QoS 2 closes the connection as IoT Hub does; a NUL in a topic is refused', async (t) => {
  const h = await hostileHub(t);
  const a = await connectChild(h, 'child-0');
  t.equal(
    await publishOutcome(a, 'devices/child-0/messages/events/', 'exactly once?', 2),
    'closed',
    'a QoS 2 publish closes the connection',
  );
  t.equal(h.hub.status().refusals.qos2, 1, 'counted as qos2');
  await a.endAsync(true);

  const b = await connectChild(h, 'child-1');
  t.teardown(() => b.endAsync(true));
  t.equal(
    await publishOutcome(b, 'devices/child-1/messages/events/k=a\u0000b', 'nul', 1),
    'closed',
    'a NUL in the topic closes it',
  );
  t.equal(h.hub.status().refusals['malformed-topic'], 1, 'a NUL in the topic is a malformed-topic refusal');
  const records = await (await h.log.lane(UPSTREAM_LANE)).read(1, { recordsMax: 10 });
  t.same(records, [], 'neither was stored');
});

t.test(
  'reserved property names are left out and counted; the system properties children set keep working',
  async (t) => {
    const h = await hostileHub(t);
    const a = await connectChild(h, 'child-0');
    t.teardown(() => a.endAsync(true));
    const bag = [
      'outpost-device-id=child-9',
      'iothub-creation-time-utc=2000-01-01T00%3A00%3A00Z',
      'Outpost-Msg-Id=x',
      '%24deviceId=child-9',
      '%24.ct=application%2Fjson',
      '%24.ce=utf-8',
      '%24.mid=m-1',
      '%24.cid=c-1',
      '%24.to=%2Fdevices%2Fx',
      'temp=21',
    ].join('&');
    await a.publishAsync(`devices/child-0/messages/events/${bag}`, '{"temp":21}', { qos: 1 });
    const [record] = await (await h.log.lane(UPSTREAM_LANE)).read(1, { recordsMax: 1 });
    t.same(
      record?.properties,
      {
        temp: '21',
        'child-message-id': 'm-1',
        'correlation-id': 'c-1',
        [RECORD_KEY.deviceId]: 'child-0',
        [RECORD_KEY.contentType]: 'application/json',
        [RECORD_KEY.contentEncoding]: 'utf-8',
      },
      "only the child's own properties and the mapped system properties are kept; the device id is the hub's",
    );
    t.equal(h.hub.status().refusals['reserved-property'], 1, 'the message is counted once as carrying reserved names');
  },
);

t.test(
  'a child over the rate is slowed down, not cut; one running a burst ahead is cut, and the log says why',
  async (t) => {
    const h = await hostileHub(t, { hub: { publishRatePerSec: 20, publishBurst: 5 } });
    const steady = await connectChild(h, 'child-0');
    t.teardown(() => steady.endAsync(true));
    let acked = 0;
    while (acked < 30 && (await publishOutcome(steady, 'devices/child-0/messages/events/', `s${acked}`, 1)) === 'acked')
      acked += 1;
    t.equal(acked, 30, 'a child waiting for each PUBACK, 30 messages over a burst of 5, gets all its PUBACKs');
    t.equal(h.hub.status().refusals.rate ?? 0, 0, 'and is not refused');

    const flood = await connectChild(h, 'child-1');
    const closed = new Promise<void>((resolve) => flood.once('close', () => resolve()));
    for (let i = 0; i < 40; i += 1) flood.publish('devices/child-1/messages/events/', `f${i}`, { qos: 0 });
    await closed;
    t.equal(h.hub.status().refusals.rate, 1, 'a child more than publishBurst messages ahead of the rate is cut');
    await until('the refusal summary', () => h.errors.some((e) => /\brate 1\b.*child-1.*127\.0\.0\.1/.test(e.message)));
    t.match(h.errors.map((e) => e.message).join('\n'), /hub\.publishRatePerSec/, 'naming the limit to raise');
    await flood.endAsync(true);
  },
);
