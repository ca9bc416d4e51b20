// The register map a real BME280 presents (chip id, trimming data, one finished measurement), as i2cset
// commands for i2c-stub. Taken from the register-map fake, which lays the datasheet's worked example out as the
// chip does, after one forced measurement so the data registers hold the example's raw ADC values.
import { compensateBme280 } from '../../drivers/i2c/bme280-compensation.js';
import { DATASHEET_ADC, DATASHEET_CALIBRATION, FakeBme280 } from '../../drivers/i2c/fake-bme280.js';

/** The board's BME280 address (SDO to GND), where i2c-stub answers. */
export const BME280_ADDRESS = '0x76';

/** The registers the driver reads (datasheet section 5.3, Table 18): [register, value]. */
export function bme280Registers(): Array<[number, number]> {
  const chip = new FakeBme280();
  chip.write(Buffer.from([0xf2, 0x01]));
  chip.write(Buffer.from([0xf4, (1 << 5) | (1 << 2) | 0x01]));
  chip.write(Buffer.from([0x00]));
  const image = chip.read(256);
  const wanted = [0xd0, ...range(0x88, 0xa1), ...range(0xe1, 0xe7), ...range(0xf7, 0xfe)];
  return wanted.map((reg) => [reg, image[reg]!]);
}

/** What the driver must report for those registers (section 8.1's double-precision compensation). */
export function bme280Expected(): { temperatureC: number; pressurePa: number; humidityPercent: number } {
  const r = compensateBme280(DATASHEET_CALIBRATION, DATASHEET_ADC);
  if (r.temperatureC === null || r.pressurePa === null || r.humidityPercent === null) {
    throw new Error('the datasheet example compensates to a reading');
  }
  return { temperatureC: r.temperatureC, pressurePa: r.pressurePa, humidityPercent: r.humidityPercent };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}
