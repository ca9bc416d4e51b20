import t from 'tap';
import {
  HEADER_BYTES,
  decodeProperties,
  encodeProperties,
  encodeRecord,
  parseRecord,
  recordBytes,
} from '../../../firmware/store/record.js';

const MAX = 256 * 1024;

function frame(seq: number, body: Buffer, properties?: Record<string, string>): Buffer {
  const props = encodeProperties(properties);
  const buf = Buffer.alloc(recordBytes(props, body));
  encodeRecord(buf, 0, {
    seq,
    flags: 0,
    enqueuedAtMs: 1_700_000_000_123,
    expiresAtStoreMs: 1_700_007_200_123,
    props,
    body,
  });
  return buf;
}

t.test('a framed record parses back to the same fields', async (t) => {
  const buf = frame(2 ** 40 + 5, Buffer.from('hello'), { 'content-type': 'application/json', ü: 'ß' });
  t.equal(buf.length, HEADER_BYTES + buf.readUInt16LE(6) + 5);
  const res = parseRecord(buf, 0, buf.length, MAX);
  if (res.kind !== 'ok') throw new Error('expected ok');
  t.equal(res.header.seq, 2 ** 40 + 5);
  t.equal(res.header.enqueuedAtMs, 1_700_000_000_123);
  t.equal(res.header.expiresAtStoreMs, 1_700_007_200_123);
  const props = decodeProperties(buf, HEADER_BYTES, HEADER_BYTES + res.header.propsBytes);
  t.same(props, { 'content-type': 'application/json', ü: 'ß' });
  t.equal(buf.toString('utf8', HEADER_BYTES + res.header.propsBytes), 'hello');
});

t.test('every single-bit flip is detected', async (t) => {
  const clean = frame(7, Buffer.from('0123456789abcdef'), { k: 'v' });
  let detected = 0;
  for (let bit = 0; bit < clean.length * 8; bit++) {
    const buf = Buffer.from(clean);
    buf[bit >> 3]! ^= 1 << (bit & 7);
    if (parseRecord(buf, 0, buf.length, MAX).kind !== 'ok') detected++;
  }
  t.equal(detected, clean.length * 8, 'no flipped record parses as valid');
});

t.test('a record cut short is "short", never garbage', async (t) => {
  const buf = frame(1, Buffer.alloc(100, 1));
  for (let cut = 0; cut < buf.length; cut++) {
    t.not(parseRecord(buf, 0, cut, MAX).kind, 'ok', `cut at ${cut}`);
  }
});

t.test('length fields beyond recordBytesMax are refused without reading further', async (t) => {
  const buf = frame(1, Buffer.alloc(2000, 1));
  t.equal(parseRecord(buf, 0, buf.length, 1024).kind, 'bad');
});

t.test('property limits are enforced with a message naming the key', async (t) => {
  t.throws(() => encodeProperties({ ['k'.repeat(300)]: 'v' }), /property key/);
  t.throws(() => encodeProperties({ big: 'x'.repeat(70_000) }), /"big" value/);
  t.equal(encodeProperties({}), null);
  t.equal(encodeProperties(undefined), null);
});
