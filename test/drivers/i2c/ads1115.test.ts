import t from 'tap';
import { ads1115CodeToVolts, ads1115Config, ads1115Driver } from '../../../drivers/i2c/ads1115.js';
import { FakeAds1115 } from '../../../drivers/i2c/fake-ads1115.js';
import { FakeI2cBus } from '../../../drivers/i2c/fake-bus.js';
import { recordingContext } from '../../fixtures/driver-context.js';

t.test('LSB sizes match the datasheet table', async (t) => {
  // ADS1115 datasheet section 9.3.3, Table 3: ±4.096 V → 125 µV, ±2.048 V → 62.5 µV, ±0.256 V → 7.8125 µV.
  t.equal(ads1115CodeToVolts(1, 4.096), 125e-6);
  t.equal(ads1115CodeToVolts(1, 2.048), 62.5e-6);
  t.equal(ads1115CodeToVolts(1, 0.256), 7.8125e-6);
  t.equal(ads1115CodeToVolts(0x7fff, 2.048), 2.048 - 62.5e-6, '0x7FFF is full scale minus one LSB');
});

t.test('config word: OS, single-ended MUX, PGA, single-shot, 128 SPS, comparator off', async (t) => {
  // AIN0/GND (100), ±2.048 V (010): 1 100 010 1 100 00011 = 0xC583.
  t.equal(ads1115Config({ input: 0, name: 'ain0', fullScaleV: 2.048 }), 0xc583);
  // AIN3/GND (111), ±4.096 V (001): 1 111 001 1 100 00011 = 0xF383.
  t.equal(ads1115Config({ input: 3, name: 'ain3', fullScaleV: 4.096 }), 0xf383);
});

t.test('the driver converts each channel with its own gain', async (t) => {
  const bus = new FakeI2cBus();
  const fake = new FakeAds1115([1.0, 0.1, 3.3, 0]);
  bus.attach(0x49, fake);
  const ctx = recordingContext({
    address: 0x49,
    channels: [
      { input: 0, name: 'supply', fullScaleV: 4.096 },
      { input: 1, name: 'shunt', fullScaleV: 0.256 },
      { input: 2, name: 'clipped', fullScaleV: 2.048 },
    ],
  });
  const driver = ads1115Driver.create(ctx, bus);
  await driver.init();
  const reading = await driver.sample!();
  t.equal(reading!['supplyV'], 1.0, '1.0 V is code 8000 at 125 µV');
  t.equal(reading!['shuntV'], 0.1, '0.1 V is code 12800 at 7.8125 µV');
  t.equal(reading!['clippedV'], 2.047938, '3.3 V on a ±2.048 V range reads full scale');
  t.equal(fake.conversions, 3);
});

t.test('init fails when nothing answers', async (t) => {
  const driver = ads1115Driver.create(
    recordingContext({ address: 0x48, channels: [{ input: 0, name: 'ain0', fullScaleV: 2.048 }] }),
    new FakeI2cBus(),
  );
  await t.rejects(driver.init(), { code: 'NACK' });
});
