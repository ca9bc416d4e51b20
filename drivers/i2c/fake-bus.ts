import { assertTransfer, hex, I2cError, type I2cBus } from '../i2c-bus.js';

/** A device on the fake bus, seen the way the bus master sees it: bytes in, bytes out. */
export interface FakeI2cDevice {
  /** One write transaction's bytes (the first is usually a register pointer or command). */
  write(data: Buffer): void;
  /** One read transaction; must return exactly `length` bytes. */
  read(length: number): Buffer;
}

/**
 * An in-memory I2C bus holding register-map fakes. Keeps the I2cBus contract, and lets tests pull a device
 * off the bus (absent device: NACK) or make the next transactions fail (bus error: IO).
 */
export class FakeI2cBus implements I2cBus {
  private readonly devices = new Map<number, FakeI2cDevice>();
  private readonly failures = new Map<number, number>();
  private closed = false;
  /** Every transaction, for tests that assert on the bytes a driver puts on the wire. */
  readonly transactions: { address: number; op: 'write' | 'read'; bytes: Buffer }[] = [];

  attach(address: number, device: FakeI2cDevice): void {
    this.devices.set(address, device);
  }

  detach(address: number): void {
    this.devices.delete(address);
  }

  /** The next `count` transactions to `address` fail with an IO error (a glitch on the wire). */
  failNext(address: number, count: number): void {
    this.failures.set(address, count);
  }

  async write(address: number, data: Buffer): Promise<void> {
    this.target(address, data.length).write(Buffer.from(data));
    this.transactions.push({ address, op: 'write', bytes: Buffer.from(data) });
  }

  async read(address: number, length: number): Promise<Buffer> {
    const bytes = this.target(address, length).read(length);
    this.transactions.push({ address, op: 'read', bytes });
    return Buffer.from(bytes);
  }

  async readRegister(address: number, register: number, length: number): Promise<Buffer> {
    await this.write(address, Buffer.from([register]));
    return this.read(address, length);
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private target(address: number, length: number): FakeI2cDevice {
    assertTransfer(address, length);
    if (this.closed) throw new I2cError('CLOSED', 'i2c bus is closed');
    const failures = this.failures.get(address) ?? 0;
    if (failures > 0) {
      this.failures.set(address, failures - 1);
      throw new I2cError('IO', `i2c transfer to ${hex(address)} failed (injected)`);
    }
    const device = this.devices.get(address);
    if (!device) throw new I2cError('NACK', `no device acknowledged at ${hex(address)}`);
    return device;
  }
}

/**
 * The common shape of sensor register maps (BME280, ADS1115 pointer style): a write's first byte sets the
 * register pointer, further bytes are written from there; reads return bytes from the pointer onwards,
 * auto-incrementing.
 */
export class RegisterMap implements FakeI2cDevice {
  protected readonly registers = Buffer.alloc(256);
  protected pointer = 0;

  write(data: Buffer): void {
    this.pointer = data[0]!;
    for (let i = 1; i < data.length; i++) this.onWrite(this.pointer + i - 1, data[i]!);
  }

  read(length: number): Buffer {
    this.beforeRead(this.pointer, length);
    const out = Buffer.alloc(length);
    for (let i = 0; i < length; i++) out[i] = this.registers[(this.pointer + i) & 0xff]!;
    this.pointer = (this.pointer + length) & 0xff;
    return out;
  }

  /** A register write from the bus; subclasses give side effects (reset, start conversion). */
  protected onWrite(register: number, value: number): void {
    this.registers[register & 0xff] = value;
  }

  /** Lets a subclass refresh computed registers before the master reads them. */
  protected beforeRead(_register: number, _length: number): void {}
}
