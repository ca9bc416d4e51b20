/**
 * Sensirion's CRC-8 (SHT3x-DIS datasheet section 4.12, Table 19): polynomial 0x31 (x^8 + x^5 + x^4 + 1),
 * initial value 0xFF, no reflection, no final XOR. The datasheet's check value: CRC(0xBE 0xEF) = 0x92.
 */
export function sensirionCrc8(data: Uint8Array): number {
  let crc = 0xff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 0x80 ? ((crc << 1) ^ 0x31) & 0xff : (crc << 1) & 0xff;
  }
  return crc;
}
