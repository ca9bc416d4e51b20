import t from 'tap';
import { bme280Driver } from '../../../drivers/i2c/bme280.js';
import { compensateBme280, parseBme280Calibration } from '../../../drivers/i2c/bme280-compensation.js';
import { I2cError } from '../../../drivers/i2c-bus.js';
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
  v =
    (((adcH << 14) - (c.digH4 << 20) - c.digH5 * v + 16384) >> 15) *
    (((((((v * c.digH6) >> 10) * (((v * c.digH3) >> 11) + 32768)) >> 10) + 2097152) * c.digH2 + 8192) >> 14);
  v = v - (((((v >> 15) * (v >> 15)) >> 7) * c.digH1) >> 4);
  v = Math.min(Math.max(v, 0), 419430400);
  return (v >> 12) / 1024;
}

t.test('compensation reproduces the datasheet worked example', async (t) => {
  const result = compensateBme280(DATASHEET_CALIBRATION, DATASHEET_ADC);
  // BMP280 datasheet section 3.12: t_fine = 128422, T = 25.08 °C, p = 100653.27 Pa (double precision).
  t.equal(result.tFine, 128422);
  t.equal(result.temperatureC!.toFixed(2), '25.08');
  // The example table carries t_fine unrounded (128422.29) into the pressure formula, while the datasheet's
  // code truncates it to an integer as this driver does: that accounts for 0.009 Pa of difference.
  t.ok(Math.abs(result.pressurePa! - 100653.27) < 0.015, `pressure ${result.pressurePa} Pa`);
  const reference = humidityInt32(DATASHEET_ADC.humidity, result.tFine!);
  // The integer formula truncates at each shift; the two agree to well under 0.01 %RH.
  t.ok(
    Math.abs(result.humidityPercent! - reference) < 0.01,
    `humidity ${result.humidityPercent} matches int32 formula ${reference}`,
  );
  t.ok(
    result.humidityPercent! > 0 && result.humidityPercent! < 100,
    'humidity is inside the clamp, so the check means something',
  );
});

t.test('humidity matches the integer formula across its range and clamps at 0 and 100', async (t) => {
  for (const adcH of [20000, 25000, 30000, 35000, 40000]) {
    const result = compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, humidity: adcH });
    t.ok(Math.abs(result.humidityPercent! - humidityInt32(adcH, result.tFine!)) < 0.01, `adc_H ${adcH}`);
    const atLimit = result.humidityPercent === 0 || result.humidityPercent === 100;
    t.same(result.clamped, atLimit ? ['humidityPercent'] : [], `adc_H ${adcH} is flagged only if it was clamped`);
  }
  const dry = compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, humidity: 0 });
  t.match(dry, { humidityPercent: 0, clamped: ['humidityPercent'] });
  const wet = compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, humidity: 65535 });
  t.match(wet, { humidityPercent: 100, clamped: ['humidityPercent'] });
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
  t.same(await driver.sample!(), { temperatureC: 25.08, pressurePa: 100653.3, humidityPercent: 55, outOfRange: null });
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

/** A driver on the datasheet fake at 0x76, initialised. */
async function driverOnFake(): Promise<{
  bus: FakeI2cBus;
  fake: FakeBme280;
  driver: ReturnType<typeof bme280Driver.create>;
}> {
  const bus = new FakeI2cBus();
  const fake = new FakeBme280();
  bus.attach(0x76, fake);
  const driver = bme280Driver.create(recordingContext({ address: 0x76, oversampling: 1 }), bus);
  await driver.init();
  return { bus, fake, driver };
}

t.test("the data registers' skipped values are reported as not measured, not as weather", async (t) => {
  const { fake, driver } = await driverOnFake();
  // Compensated, 0x80000 would read 72903 Pa and 0x8000 some plausible %RH (issue 19).
  fake.setAdc({ pressure: 0x80000 });
  t.same(await driver.sample!(), { temperatureC: 25.08, pressurePa: null, humidityPercent: 55, outOfRange: null });
  fake.setAdc({ pressure: DATASHEET_ADC.pressure, humidity: 0x8000 });
  t.same(await driver.sample!(), {
    temperatureC: 25.08,
    pressurePa: 100653.3,
    humidityPercent: null,
    outOfRange: null,
  });
  // Without a temperature there is no t_fine, so nothing can be compensated.
  fake.setAdc({ temperature: 0x80000, humidity: DATASHEET_ADC.humidity });
  t.same(await driver.sample!(), { temperatureC: null, pressurePa: null, humidityPercent: null, outOfRange: null });
  t.same(compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, temperature: 0x80000 }).tFine, null);
});

t.test("results outside the operating range are clamped as Bosch's SensorAPI does, and flagged", async (t) => {
  const { fake, driver } = await driverOnFake();
  // Unclamped, adc_P 0xFFFFF compensates to about -14063 Pa.
  fake.setAdc({ pressure: 0xfffff });
  t.same(await driver.sample!(), {
    temperatureC: 25.08,
    pressurePa: 30000,
    humidityPercent: 55,
    outOfRange: 'pressurePa',
  });
  fake.setAdc({ pressure: 0 });
  t.match(await driver.sample!(), { pressurePa: 110000, outOfRange: 'pressurePa' });
  fake.setAdc({ pressure: DATASHEET_ADC.pressure, temperature: 0xfffff });
  t.match(await driver.sample!(), { temperatureC: 85, outOfRange: /^temperatureC(,|$)/ });
  fake.setAdc({ temperature: 0 });
  t.match(await driver.sample!(), { temperatureC: -40, outOfRange: /^temperatureC(,|$)/ });
  // t_fine stays the die's real temperature, as in Bosch's code, so P and H are not skewed by the clamp.
  const hot = compensateBme280(DATASHEET_CALIBRATION, { ...DATASHEET_ADC, temperature: 0xfffff });
  t.ok(hot.tFine! / 5120 > 85, `t_fine ${hot.tFine} is not clamped`);
  const unprogrammed = compensateBme280({ ...DATASHEET_CALIBRATION, digP1: 0 }, DATASHEET_ADC);
  t.match(unprogrammed, { pressurePa: 30000, clamped: ['pressurePa'] }, 'dig_P1 = 0 gives no pressure, flagged');
});

t.test('a sensor that reset since init (brown-out) still measures humidity', async (t) => {
  const { bus, driver } = await driverOnFake();
  // Section 5.4.2: the soft reset clears ctrl_hum, as a brown-out does.
  await bus.write(0x76, Buffer.from([0xe0, 0xb6]));
  t.same(await driver.sample!(), { temperatureC: 25.08, pressurePa: 100653.3, humidityPercent: 55, outOfRange: null });
});
