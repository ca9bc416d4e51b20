import t from 'tap';
import type { I2cBus } from '../../../drivers/i2c-bus.js';
import { FakeBme280 } from '../../../drivers/i2c/fake-bme280.js';
import { FakeI2cBus } from '../../../drivers/i2c/fake-bus.js';
import { openI2cDev } from '../../../drivers/i2c/i2c-dev.js';

/**
 * The I2cBus contract (drivers/i2c/bus.ts), checked against any bus that has a BME280 at `bmeAddress` and
 * nothing at `emptyAddress`.
 */
function contract(name: string, open: () => Promise<{ bus: I2cBus; bmeAddress: number; emptyAddress: number }>): void {
  t.test(`I2cBus contract: ${name}`, async (t) => {
    const { bus, bmeAddress, emptyAddress } = await open();
    t.teardown(() => bus.close());
    t.same([...(await bus.readRegister(bmeAddress, 0xd0, 1))], [0x60], 'readRegister reads the chip id');
    const calibration = await bus.readRegister(bmeAddress, 0x88, 26);
    t.equal(calibration.length, 26, 'block reads return exactly the length asked');
    await bus.write(bmeAddress, Buffer.from([0xd0]));
    t.same([...(await bus.read(bmeAddress, 1))], [0x60], 'write of a pointer then read is the same as readRegister');
    await t.rejects(
      bus.readRegister(emptyAddress, 0x00, 1),
      { name: 'I2cError', code: 'NACK' },
      'absent address is NACK',
    );
    t.same([...(await bus.readRegister(bmeAddress, 0xd0, 1))], [0x60], 'the bus still works after a NACK');
    await t.rejects(bus.readRegister(bmeAddress, 0x00, 33), RangeError, 'more than 32 bytes is a programming error');
    await bus.close();
    await bus.close();
    await t.rejects(bus.readRegister(bmeAddress, 0xd0, 1), { name: 'I2cError', code: 'CLOSED' }, 'closed bus rejects');
  });
}

contract('FakeI2cBus', async () => {
  const bus = new FakeI2cBus();
  bus.attach(0x76, new FakeBme280());
  return { bus, bmeAddress: 0x76, emptyAddress: 0x50 };
});

// Real hardware: OUTPOST_TEST_I2C_BME280=/dev/i2c-1:0x76 (a BME280 wired there, and nothing at 0x50).
const real = process.env['OUTPOST_TEST_I2C_BME280'];
if (real) {
  const [device, address] = real.split(':');
  contract(`i2c-dev ${real}`, async () => ({
    bus: await openI2cDev(device!),
    bmeAddress: Number(address),
    emptyAddress: 0x50,
  }));
} else {
  t.test(
    'I2cBus contract: real i2c-dev',
    { skip: 'set OUTPOST_TEST_I2C_BME280=/dev/i2c-1:0x76 to run against a wired BME280' },
    () => {},
  );
}
