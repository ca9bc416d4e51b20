import t from 'tap';
import { bme280Driver } from '../../../drivers/i2c/bme280.js';
import { compensateBme280, parseBme280Calibration } from '../../../drivers/i2c/bme280-compensation.js';
import { I2cError } from '../../../drivers/i2c/bus.js';
import { DATASHEET_ADC, DATASHEET_CALIBRATION, FakeBme280 } from '../../../drivers/i2c/fake-bme280.js';
import { FakeI2cBus } from '../../../drivers/i2c/fake-bus.js';
import { recordingContext } from '../../fixtures/driver-context.js';

/**
 * The datasheet's 32-bit integer humidity formula (BME280 datasheet section 4.2.3, bme280_compensate_H_int32),
 * written out here independently of the driver's double-precision one (section 8.1) to cross-check it.
 * Returns %RH.
 */
function humidityInt32(adcH: number, tFine: number): number {
  const c = DATASHEET_CALIBRATION;
  let v = tFine - 76800;
  v = (((((adcH << 14) - (c.digH4 << 20) - c.digH5 * v) + 16384) >> 15)
    * (((((((v * c.digH6) >> 10) * (((v * c.digH3) >> 11) + 32768)) >> 10) + 2097152) * c.digH2 + 8192) >> 14));
  v = v - (((((v >> 15) * (v >> 15)) >> 7) * c.digH1) >> 4);
  v = Math.min(Math.max(v, 0), 419430400);
  return (v >> 12) / 1024;
}

t.test('compensation reproduces the datasheet worked example', async (t) => {
  const result = compensateBme280(DATASHEET_CALIBRATION, DATASHEET_ADC);
  // BMP280 datasheet section 3.12: t_fine = 128422, T = 25.08 °C, p = 100653.27 Pa (double precision).
  t.equal(result.tFine, 128422);
  t.equal(result.temperatureC.toFixed(2), '25.08');
  // The example table carries t_fine unrounded (128422.29) into the pressure formula, while the datasheet's
  // code truncates it to an integer as this driver does: that accounts for 0.009 Pa of difference.
  t.ok(Math.abs(result.pressurePa - 100653.27) < 0.015, `pressure ${result.pressurePa} Pa`);
  const reference = humidityInt32(DATASHEET_ADC.humidity, result.tFine);
  // The integer formula truncates at each shift; the two agree to well under 0.01 %RH.
  t.ok(Math.abs(result.humidityPercent - reference) < 0.01, `humidity ${result.humidityPercent} matches int32 formula ${reference}`);
  t.ok(result.humidityPercent > 0 && result.humidityPercent < 100, 'humidity is inside the clamp, so the check means something');
});

t.test('humidity matches the integer formula across its range and clamps at 0 and 100', async (t) => {
  for (const adcH of [20000, 25000, 30000, 35000, 40000]) {
    const result = compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, humidity: adcH });
    t.ok(Math.abs(result.humidityPercent - humidityInt32(adcH, result.tFine)) < 0.01, `adc_H ${adcH}`);
  }
  t.equal(compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, humidity: 0 }).humidityPercent, 0);
  t.equal(compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, humidity: 65535 }).humidityPercent, 100);
});

t.test('calibration readout decodes Table 16, including the split dig_H4/dig_H5 nibbles and signs', async (t) => {
  const bus = new FakeI2cBus();
  const unusual = { ...DATASHEET_CALIBRATION, digH4: -1234, digH5: 2047, digH6: -7, digH2: -300 };
  bus.attach(0x76, new FakeBme280(unusual));
  const low = await bus.readRegister(0x76, 0x88, 26);
  const high = await bus.readRegister(0x76, 0xe1, 7);
  t.same(parseBme280Calibration(low, high), unusual);
});

t.test('the driver reads the chip id, calibration and a forced measurement over the bus', async (t) => {
  const bus = new FakeI2cBus();
  const fake = new FakeBme280();
  bus.attach(0x77, fake);
  const ctx = recordingContext({ address: 0x77, oversampling: 2 });
  const driver = bme280Driver.create(ctx, bus);
  await driver.init();
  t.same(await driver.sample!(), { temperatureC: 25.08, pressurePa: 100653.3, humidityPercent: 55 });
  t.equal(fake.measurements, 1, 'one forced measurement per sample');
  const ctrlMeas = bus.transactions.find((tx) => tx.op === 'write' && tx.bytes[0] === 0xf4);
  t.same([...ctrlMeas!.bytes], [0xf4, (2 << 5) | (2 << 2) | 1], 'osrs ×2 (code 2) for T and P, forced mode');
  fake.setAdc({ temperature: DATASHEET_ADC.temperature + 20000 });
  const warmer = await driver.sample!();
  t.ok((warmer!['temperatureC'] as number) > 25.08 + 5, 'a new measurement follows the raw value');
});

t.test('init refuses a device that is not a BME280 and an absent one', async (t) => {
  const bus = new FakeI2cBus();
  const bmp280 = new FakeBme280();
  // The chip id is read-only on the part, so the fake's map is patched directly to look like a BMP280.
  (bmp280 as unknown as { registers: Buffer }).registers[0xd0] = 0x58;
  bus.attach(0x76, bmp280);
  const driver = bme280Driver.create(recordingContext({ address: 0x76, oversampling: 1 }), bus);
  await t.rejects(driver.init(), { message: 'device at 0x76 has chip id 0x58, a BME280 has 0x60' });
  const absent = bme280Driver.create(recordingContext({ address: 0x77, oversampling: 1 }), bus);
  await t.rejects(absent.init(), new I2cError('NACK', 'no device acknowledged at 0x77'));
});
