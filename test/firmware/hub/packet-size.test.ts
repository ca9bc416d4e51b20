import t, { type Test } from 'tap';
import net from 'node:net';
import { once } from 'node:events';
import path from 'node:path';
import { startHub } from '../../../firmware/hub/index.js';
import { UPSTREAM_LANE } from '../../../firmware/store/names.js';
import { PacketSizeGuard } from '../../../firmware/hub/packet-guard.js';
import { RingLog } from '../../../firmware/store/log.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { mqttChild, publishRefused, newKey, sasPassword, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/** Oversize packets are refused from their fixed header, before aedes buffers their body. */

const keyA = newKey();

/** An MQTT fixed header: type/flags byte and the remaining length as a variable byte integer. */
function fixedHeader(firstByte: number, remainingBytes: number): Buffer {
  const out = [firstByte];
  do {
    let byte = remainingBytes % 128;
    remainingBytes = Math.floor(remainingBytes / 128);
    if (remainingBytes > 0) byte |= 0x80;
    out.push(byte);
  } while (remainingBytes > 0);
  return Buffer.from(out);
}

t.test('the guard follows packet boundaries across any chunking', async (t) => {
  const small = Buffer.concat([
    fixedHeader(0x30, 200),
    Buffer.alloc(200, 1),
    fixedHeader(0xc0, 0),
    fixedHeader(0x30, 1000),
    Buffer.alloc(1000, 2),
  ]);
  const wrongOk: number[] = [];
  for (let cut = 0; cut <= small.length; cut += 1) {
    const guard = new PacketSizeGuard(1_004);
    if (guard.feed(small.subarray(0, cut)) !== 'ok' || guard.feed(small.subarray(cut)) !== 'ok') wrongOk.push(cut);
  }
  t.same(wrongOk, [], 'packets within the limit pass, however the stream is cut');
  const big = Buffer.concat([fixedHeader(0x30, 10), Buffer.alloc(10), fixedHeader(0x30, 1_002)]);
  const missed: number[] = [];
  for (let cut = 0; cut <= big.length; cut += 1) {
    const guard = new PacketSizeGuard(1_004);
    const first = guard.feed(big.subarray(0, cut));
    if ((first === 'ok' ? guard.feed(big.subarray(cut)) : first) !== 'too-big') missed.push(cut);
  }
  t.same(missed, [], 'a packet one byte over the limit is caught, however the stream is cut');
  t.equal(
    new PacketSizeGuard(1_004).feed(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01])),
    'malformed',
    'a remaining length over 4 bytes',
  );
  t.throws(() => new PacketSizeGuard(0), /"packetBytesMax" must be an integer of at least 2, got 0/);
});

/** A hub on a real store (the store's default limits, as the gateway runs it) with child-a known. */
async function setup(t: Test, prefix: string) {
  const dir = tempDir(t, prefix);
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, [{ deviceId: 'child-a', key: keyA }]));
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false } },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
  });
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  return { hub, log, port: hub.status().ports.tcp! };
}

t.test('the hub closes a connection whose packet header announces more than the limit', async (t) => {
  const { hub, log, port } = await setup(t, 'outpost-hub-packet-');

  const raw = net.connect(port, '127.0.0.1');
  await once(raw, 'connect');
  const rawClosed = once(raw, 'close');
  raw.write(fixedHeader(0x10, 100 * 1024 * 1024));
  await rawClosed;
  t.equal(
    hub.status().refusals['packet-size'],
    1,
    'a 100 MiB CONNECT is refused from its 5 header bytes, before any body is sent',
  );

  const a = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
  t.teardown(() => a.endAsync(true));
  await a.publishAsync('devices/child-a/messages/events/', Buffer.alloc(200 * 1024, 7), { qos: 1 });
  const [record] = await (await log.lane(UPSTREAM_LANE)).read(1, { recordsMax: 1 });
  t.same(record?.body, Buffer.alloc(200 * 1024, 7), 'a 200 KiB publish, under the limit, is PUBACKed and in the log');
  const closed = new Promise<void>((resolve) => a.once('close', () => resolve()));
  a.stream.write(Buffer.concat([fixedHeader(0x32, 200 * 1024 * 1024), Buffer.from([0, 1, 0x61])]));
  await closed;
  t.equal(
    hub.status().refusals['packet-size'],
    2,
    'a 200 MiB PUBLISH header from an authenticated child closes it at once',
  );
});

t.test(
  'a message at exactly the hub limit is stored; a record over the store limit is a counted message-size refusal',
  async (t) => {
    const { hub, log, port } = await setup(t, 'outpost-hub-exact-');
    const messageBytesMax = 256 * 1024;

    const a = await mqttChild(port, 'child-a', sasPassword('child-a', keyA));
    t.teardown(() => a.endAsync(true));
    // 64 properties (the most a topic may carry) with long values, and a payload filling the rest exactly.
    const bag = Array.from({ length: 64 }, (_, i) => `k${i}=${'v'.repeat(900)}`).join('&');
    const topic = `devices/child-a/messages/events/${bag}`;
    const payload = Buffer.alloc(messageBytesMax - Buffer.byteLength(topic), 7);
    await a.publishAsync(topic, payload, { qos: 1 });
    const [record] = await (await log.lane(UPSTREAM_LANE)).read(1);
    t.equal(record?.body.length, payload.length, 'the record holds the whole payload');
    t.equal(record?.properties['k63'], 'v'.repeat(900), 'and its properties');
    t.equal(hub.status().refusals['message-size'] ?? 0, 0);
    t.equal(hub.status().refusals.store ?? 0, 0, 'the store took it');

    // Under messageBytesMax and a legal MQTT topic (65,535 bytes, the most a topic length can say), but its
    // 64 properties plus the ids the hub adds encode to more than the record format's 65,535 bytes of properties.
    const prefix = 'devices/child-a/messages/events/';
    const keys = Array.from({ length: 64 }, (_, i) => `k${i}`);
    const fixed = prefix.length + keys.reduce((n, k) => n + k.length + 1, 0) + keys.length - 1;
    const each = Math.floor((65_535 - fixed) / keys.length);
    const values = keys.map((_, i) =>
      'v'.repeat(i === keys.length - 1 ? 65_535 - fixed - each * (keys.length - 1) : each),
    );
    const fullTopic = prefix + keys.map((k, i) => `${k}=${values[i]}`).join('&');
    t.equal(Buffer.byteLength(fullTopic), 65_535);
    await publishRefused(a, fullTopic, 'x');
    t.equal(hub.status().refusals['message-size'], 1, "counted as the message's size, not as a store failure");
    t.equal(hub.status().refusals.store ?? 0, 0);
  },
);
