import { crc32 as nativeCrc32 } from 'node:zlib';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { crc32, crc32Portable } from '../../../firmware/ops/zlib-compat.js';

t.test('the portable CRC-32 (for Node 20.11 on armv7) equals zlib.crc32 on every input shape', async (t) => {
  t.equal(crc32, nativeCrc32, 'where Node has zlib.crc32 the native one is used');
  t.equal(crc32Portable('123456789'), 0xcbf43926, 'the CRC-32/ISO-HDLC check value');
  t.equal(crc32Portable(Buffer.alloc(0)), 0);
  for (const size of [1, 3, 255, 4096, 65_537]) {
    const data = randomBytes(size);
    t.equal(crc32Portable(data), nativeCrc32(data), `${size} random bytes`);
    const view = data.subarray(1, size);
    t.equal(crc32Portable(view), nativeCrc32(view), `a subarray of ${size - 1} bytes at offset 1`);
    t.equal(
      crc32Portable(data.subarray(size >> 1), crc32Portable(data.subarray(0, size >> 1))),
      nativeCrc32(data),
      'a running checksum continues',
    );
  }
});
