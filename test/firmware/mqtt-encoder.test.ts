import { PassThrough } from 'node:stream';
import mqttPacket from 'mqtt-packet';
import t from 'tap';
import { useCompactMqttEncoder } from '../../firmware/mqtt-encoder.js';
import { createMqttTransport } from '../../firmware/uplink/mqtt.js';

/** The encoder corks the stream and uncorks it on the next tick. */
async function encode(packet: mqttPacket.Packet): Promise<Buffer> {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  mqttPacket.writeToStream(packet, stream);
  await new Promise((resolve) => setImmediate(resolve));
  return Buffer.concat(chunks);
}

t.test('the shared encoder writes message ids without its 65,536-buffer cache, byte for byte as before', async (t) => {
  const packet = {
    cmd: 'publish',
    topic: 'a/b',
    payload: Buffer.from('x'),
    qos: 1,
    messageId: 0x1234,
    dup: false,
    retain: false,
  } as const;
  mqttPacket.writeToStream.cacheNumbers = true;
  const cached = await encode(packet);
  useCompactMqttEncoder();
  t.equal(mqttPacket.writeToStream.cacheNumbers, false);
  const compact = await encode(packet);
  t.ok(compact.length > 0);
  t.same(compact, cached);
  // The id sits after the topic: 0x12 0x34.
  t.same([...compact.subarray(2 + 2 + 3, 2 + 2 + 3 + 2)], [0x12, 0x34]);
  const parser = mqttPacket.parser();
  const parsed: mqttPacket.Packet[] = [];
  parser.on('packet', (p) => parsed.push(p));
  parser.parse(compact);
  t.equal(parsed.length, 1);
  t.equal((parsed[0] as mqttPacket.IPublishPacket).messageId, 0x1234, 'parses back with its id');
});

t.test('creating the mqtt uplink transport switches the cache off', async (t) => {
  mqttPacket.writeToStream.cacheNumbers = true;
  createMqttTransport({ url: 'mqtt://127.0.0.1:1', gatewayId: 'gw' });
  t.equal(mqttPacket.writeToStream.cacheNumbers, false);
});
