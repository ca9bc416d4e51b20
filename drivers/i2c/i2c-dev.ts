import { assertTransfer, hex, I2cError, type I2cBus } from '../i2c-bus.js';

/** The subset of i2c-bus's PromisifiedBus this adapter uses (the package ships no type declarations). */
interface PromisifiedBus {
  i2cRead(address: number, length: number, buffer: Buffer): Promise<{ bytesRead: number }>;
  sendByte(address: number, byte: number): Promise<void>;
  writeI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesWritten: number }>;
  readI2cBlock(address: number, command: number, length: number, buffer: Buffer): Promise<{ bytesRead: number }>;
  close(): Promise<void>;
}

/** Kernel errnos i2c-dev reports when nobody acknowledges the address (i2c fault-codes documentation). */
const NACK_ERRNO_CODES = new Set(['EREMOTEIO', 'ENXIO', 'EIO']);

/**
 * The real bus over /dev/i2c-N, through i2c-bus. Imported lazily so the sim board and tests never load the
 * native module.
 */
export async function openI2cDev(device: string): Promise<I2cBus> {
  const match = /^\/dev\/i2c-(\d+)$/.exec(device);
  if (!match) throw new RangeError(`"device" must look like /dev/i2c-1, got ${device}`);
  const moduleName = 'i2c-bus';
  const i2c = (await import(moduleName)) as {
    default?: { openPromisified(n: number): Promise<PromisifiedBus> };
    openPromisified?(n: number): Promise<PromisifiedBus>;
  };
  const open = i2c.openPromisified ?? i2c.default?.openPromisified;
  if (!open) throw new I2cError('IO', 'i2c-bus does not export openPromisified');
  let bus: PromisifiedBus;
  try {
    bus = await open(Number(match[1]));
  } catch (error) {
    throw new I2cError('IO', `cannot open ${device}: ${(error as Error).message}`, { cause: error });
  }
  return new I2cDevBus(bus, device);
}

class I2cDevBus implements I2cBus {
  private closed = false;

  constructor(
    private readonly bus: PromisifiedBus,
    private readonly device: string,
  ) {}

  /**
   * Writes go out as SMBus transfers, which put the same bytes on the wire as a plain write (SMBus 3.1 section
   * 6.5.2 "send byte", Linux's I2C_SMBUS_I2C_BLOCK_DATA: address, first byte as the command, the rest as data).
   * The kernel emulates SMBus on every plain-I2C adapter, but SMBus-only adapters (i2c-stub, many PC SMBus
   * controllers) refuse a plain write with EOPNOTSUPP: found on a real kernel, where i2c-stub refused the
   * BME280's register writes.
   */
  async write(address: number, data: Buffer): Promise<void> {
    await this.transfer(address, data.length, async () => {
      if (data.length === 1) {
        await this.bus.sendByte(address, data[0]!);
        return;
      }
      const { bytesWritten } = await this.bus.writeI2cBlock(address, data[0]!, data.length - 1, data.subarray(1));
      if (bytesWritten !== data.length - 1) {
        throw new I2cError('IO', `short write to ${hex(address)}: ${bytesWritten} of ${data.length - 1}`);
      }
    });
  }

  async read(address: number, length: number): Promise<Buffer> {
    const buffer = Buffer.alloc(length);
    await this.transfer(address, length, async () => {
      const { bytesRead } = await this.bus.i2cRead(address, length, buffer);
      if (bytesRead !== length) throw new I2cError('IO', `short read from ${hex(address)}: ${bytesRead} of ${length}`);
    });
    return buffer;
  }

  async readRegister(address: number, register: number, length: number): Promise<Buffer> {
    const buffer = Buffer.alloc(length);
    await this.transfer(address, length, async () => {
      const { bytesRead } = await this.bus.readI2cBlock(address, register, length, buffer);
      if (bytesRead !== length) throw new I2cError('IO', `short read from ${hex(address)}: ${bytesRead} of ${length}`);
    });
    return buffer;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.bus.close();
  }

  private async transfer(address: number, length: number, run: () => Promise<void>): Promise<void> {
    assertTransfer(address, length);
    if (this.closed) throw new I2cError('CLOSED', `${this.device} is closed`);
    try {
      await run();
    } catch (error) {
      if (error instanceof I2cError) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? '';
      const kind = NACK_ERRNO_CODES.has(code) ? 'NACK' : 'IO';
      throw new I2cError(kind, `${this.device} ${hex(address)}: ${(error as Error).message}`, { cause: error });
    }
  }
}
