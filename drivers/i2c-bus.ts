/**
 * An I2C bus master, as the kernel's i2c-dev exposes it. The contract every implementation keeps (real
 * i2c-bus, the register-map fake) and test/drivers/i2c/bus.contract.test.ts checks:
 *
 * - `write(address, data)` is one write transaction: START, address+W, data bytes, STOP.
 * - `read(address, length)` is one read transaction and resolves with exactly `length` bytes.
 * - `readRegister(address, register, length)` writes the register pointer, then reads with a repeated START
 *   (SMBus "I2C block read"); `length` is at most I2C_BLOCK_BYTES_MAX.
 * - A transaction to an address where no device acknowledges rejects with I2cError code 'NACK'; any other
 *   bus failure rejects with code 'IO'. Neither leaves the bus unusable.
 * - After close() every call rejects with code 'CLOSED'; close() is idempotent.
 */
export interface I2cBus {
  write(address: number, data: Buffer): Promise<void>;
  read(address: number, length: number): Promise<Buffer>;
  readRegister(address: number, register: number, length: number): Promise<Buffer>;
  close(): Promise<void>;
}

/** Linux i2c-dev caps an SMBus block transfer at 32 bytes (I2C_SMBUS_BLOCK_MAX in linux/i2c.h). */
export const I2C_BLOCK_BYTES_MAX = 32;
/** 7-bit addresses 0x00-0x02 and 0x78-0x7F are reserved by the I2C specification (UM10204 section 3.1.12). */
export const I2C_ADDRESS_MIN = 0x03;
export const I2C_ADDRESS_MAX = 0x77;

export type I2cErrorCode = 'NACK' | 'IO' | 'CLOSED';

export class I2cError extends Error {
  readonly code: I2cErrorCode;

  constructor(code: I2cErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'I2cError';
    this.code = code;
  }
}

export function assertTransfer(address: number, length: number): void {
  if (!Number.isInteger(address) || address < I2C_ADDRESS_MIN || address > I2C_ADDRESS_MAX) {
    throw new RangeError(`"address" must be an integer between 0x03 and 0x77, got ${address}`);
  }
  if (!Number.isInteger(length) || length < 1 || length > I2C_BLOCK_BYTES_MAX) {
    throw new RangeError(`"length" must be between 1 and ${I2C_BLOCK_BYTES_MAX} bytes, got ${length}`);
  }
}

export function hex(address: number): string {
  return `0x${address.toString(16).padStart(2, '0')}`;
}
