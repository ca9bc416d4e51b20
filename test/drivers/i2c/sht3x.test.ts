import t from 'tap';
import { I2cError } from '../../../drivers/i2c-bus.js';
import { sensirionCrc8 } from '../../../drivers/i2c/crc8.js';
import { FakeI2cBus } from '../../../drivers/i2c/fake-bus.js';
import { FakeSht3x } from '../../../drivers/i2c/fake-sht3x.js';
import { convertSht3x, decodeSht3xWords, sht3xDriver } from '../../../drivers/i2c/sht3x.js';
import { recordingContext } from '../../fixtures/driver-context.js';

t.test('CRC-8 matches the datasheet check value', async (t) => {
  // SHT3x-DIS datasheet section 4.12, Table 19: CRC(0xBEEF) = 0x92.
  t.equal(sensirionCrc8(Uint8Array.from([0xbe, 0xef])), 0x92);
  t.equal(sensirionCrc8(Uint8Array.from([0x00, 0x00])), 0x81, 'init 0xFF makes an all-zero word non-zero');
});

t.test('conversion follows section 4.13 at the ends of the range', async (t) => {
  t.same(convertSht3x(0, 0), { temperatureC: -45, humidityPercent: 0 });
  t.same(convertSht3x(0xffff, 0xffff), { temperatureC: 130, humidityPercent: 100 });
  t.equal(convertSht3x(0x6666, 0x8000).temperatureC.toFixed(2), '25.00');
});

t.test('a word with a bad CRC rejects the whole frame', async (t) => {
  t.same(decodeSht3xWords(Buffer.from([0xbe, 0xef, 0x92]), 0x44), [0xbeef]);
  t.throws(() => decodeSht3xWords(Buffer.from([0xbe, 0xef, 0x93]), 0x44), {
    message: 'sht3x at 0x44: CRC mismatch in word 0',
  });
});

t.test('the driver measures through the bus with single-shot commands', async (t) => {
  const bus = new FakeI2cBus();
  const fake = new FakeSht3x({ temperatureC: 23.45, humidityPercent: 61.2 });
  bus.attach(0x45, fake);
  const driver = sht3xDriver.create(recordingContext({ address: 0x45, repeatability: 'high' as const }), bus);
  await driver.init();
  t.same(await driver.sample!(), { temperatureC: 23.45, humidityPercent: 61.2 });
  const commands = bus.transactions.filter((tx) => tx.op === 'write').map((tx) => tx.bytes.toString('hex'));
  t.same(
    commands,
    ['30a2', 'f32d', '2400'],
    'soft reset, read status, measure high repeatability without clock stretching',
  );
  fake.corruptNextFrame();
  await t.rejects(driver.sample!(), { message: 'sht3x at 0x45: CRC mismatch in word 0' });
  t.same(await driver.sample!(), { temperatureC: 23.45, humidityPercent: 61.2 }, 'the next frame is good again');
});

t.test('init fails on an empty address', async (t) => {
  const driver = sht3xDriver.create(
    recordingContext({ address: 0x44, repeatability: 'low' as const }),
    new FakeI2cBus(),
  );
  await t.rejects(driver.init(), new I2cError('NACK', 'no device acknowledged at 0x44'));
});
