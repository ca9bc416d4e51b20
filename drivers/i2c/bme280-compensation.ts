/**
 * Bosch BME280 trimming parameters and compensation, from the BME280 datasheet (BST-BME280-DS002):
 * section 4.2.2 "Trimming parameter readout" (Table 16) for the register layout, section 8.1 "Compensation
 * formulas in double precision floating point" for the arithmetic. The temperature and pressure formulas are
 * the BMP280's (BMP280 datasheet BST-BMP280-DS001 section 3.12 gives their worked example).
 */
export interface Bme280Calibration {
  digT1: number;
  digT2: number;
  digT3: number;
  digP1: number;
  digP2: number;
  digP3: number;
  digP4: number;
  digP5: number;
  digP6: number;
  digP7: number;
  digP8: number;
  digP9: number;
  digH1: number;
  digH2: number;
  digH3: number;
  digH4: number;
  digH5: number;
  digH6: number;
}

/** Table 16: calib00..calib25 live at 0x88..0xA1 (26 bytes), calib26..calib32 at 0xE1..0xE7 (7 bytes). */
export const BME280_CALIB_LOW_REGISTER = 0x88;
/** calib00..calib25 (Table 16): one burst read. */
export const BME280_CALIB_LOW_BYTES = 26;
export const BME280_CALIB_HIGH_REGISTER = 0xe1;
/** calib26..calib32 (Table 16): the second burst read. */
export const BME280_CALIB_HIGH_BYTES = 7;

/** Decodes Table 16. `low` is 0x88..0xA1, `high` is 0xE1..0xE7. */
export function parseBme280Calibration(low: Buffer, high: Buffer): Bme280Calibration {
  if (low.length !== BME280_CALIB_LOW_BYTES || high.length !== BME280_CALIB_HIGH_BYTES) {
    throw new RangeError(`BME280 calibration must be ${BME280_CALIB_LOW_BYTES}+${BME280_CALIB_HIGH_BYTES} bytes`);
  }
  // dig_H4 and dig_H5 are 12-bit signed values sharing 0xE5: H4 = 0xE4[11:4] | 0xE5[3:0], H5 = 0xE6[11:4] | 0xE5[7:4].
  const e4 = high.readInt8(3);
  const e5 = high[4]!;
  const e6 = high.readInt8(5);
  return {
    digT1: low.readUInt16LE(0),
    digT2: low.readInt16LE(2),
    digT3: low.readInt16LE(4),
    digP1: low.readUInt16LE(6),
    digP2: low.readInt16LE(8),
    digP3: low.readInt16LE(10),
    digP4: low.readInt16LE(12),
    digP5: low.readInt16LE(14),
    digP6: low.readInt16LE(16),
    digP7: low.readInt16LE(18),
    digP8: low.readInt16LE(20),
    digP9: low.readInt16LE(22),
    digH1: low[25]!,
    digH2: high.readInt16LE(0),
    digH3: high[2]!,
    digH4: e4 * 16 + (e5 & 0x0f),
    digH5: e6 * 16 + (e5 >> 4),
    digH6: high.readInt8(6),
  };
}

/**
 * Datasheet sections 3.4.1-3.4.3 and the reset values in 5.4.7-5.4.9: a measurement that was skipped (its
 * oversampling is 0, or the part reset since it was configured) leaves 0x80000 in a 20-bit data register and
 * 0x8000 in the 16-bit humidity one. Compensated, these look like plausible weather, so they are not compensated.
 */
export const BME280_ADC_SKIPPED_20_BIT = 0x80000;
export const BME280_ADC_SKIPPED_16_BIT = 0x8000;

/**
 * Datasheet section 1, Table 1 (operating range): -40..85 °C, 300..1100 hPa, 0..100 %RH. Bosch's
 * BME280_SensorAPI clamps its compensated values to these limits; so does this driver, and says it did.
 */
export const BME280_TEMPERATURE_C_MIN = -40;
export const BME280_TEMPERATURE_C_MAX = 85;
/** 300 hPa, the low end of Table 1's pressure range. */
export const BME280_PRESSURE_PA_MIN = 30_000;
/** 1100 hPa, the high end of Table 1's pressure range. */
export const BME280_PRESSURE_PA_MAX = 110_000;
/** Relative humidity cannot go below 0 %RH. */
export const BME280_HUMIDITY_PERCENT_MIN = 0;
/** Nor above 100 %RH (Table 1). */
export const BME280_HUMIDITY_PERCENT_MAX = 100;

export type Bme280Quantity = 'temperatureC' | 'pressurePa' | 'humidityPercent';

export interface Bme280Compensated {
  /** null when the measurement was skipped (a P or H value cannot be compensated without T either). */
  temperatureC: number | null;
  pressurePa: number | null;
  humidityPercent: number | null;
  /** Quantities whose compensated value fell outside Table 1's range and were clamped to it. */
  clamped: Bme280Quantity[];
  /** The datasheet's t_fine, exposed for tests against its worked example; null when T was skipped. */
  tFine: number | null;
}

/** Section 8.1 bme280_compensate_T_double, P_double and H_double, in that order (P and H need t_fine). */
export function compensateBme280(
  cal: Bme280Calibration,
  adc: { temperature: number; pressure: number; humidity: number },
): Bme280Compensated {
  if (adc.temperature === BME280_ADC_SKIPPED_20_BIT) {
    return { temperatureC: null, pressurePa: null, humidityPercent: null, clamped: [], tFine: null };
  }
  const t1 = (adc.temperature / 16384 - cal.digT1 / 1024) * cal.digT2;
  const t2Base = adc.temperature / 131072 - cal.digT1 / 8192;
  const t2 = t2Base * t2Base * cal.digT3;
  // t_fine stays unclamped, as in Bosch's code: P and H are compensated with the die's own temperature.
  const tFine = Math.trunc(t1 + t2);
  const clamped: Bme280Quantity[] = [];
  const clamp = (quantity: Bme280Quantity, value: number, min: number, max: number): number => {
    if (value >= min && value <= max) return value;
    clamped.push(quantity);
    return value < min ? min : max;
  };
  const temperatureC = clamp('temperatureC', (t1 + t2) / 5120, BME280_TEMPERATURE_C_MIN, BME280_TEMPERATURE_C_MAX);
  const pressurePa =
    adc.pressure === BME280_ADC_SKIPPED_20_BIT
      ? null
      : clamp(
          'pressurePa',
          compensatePressure(cal, tFine, adc.pressure),
          BME280_PRESSURE_PA_MIN,
          BME280_PRESSURE_PA_MAX,
        );
  const humidityPercent =
    adc.humidity === BME280_ADC_SKIPPED_16_BIT
      ? null
      : clamp(
          'humidityPercent',
          compensateHumidity(cal, tFine, adc.humidity),
          BME280_HUMIDITY_PERCENT_MIN,
          BME280_HUMIDITY_PERCENT_MAX,
        );
  return { temperatureC, pressurePa, humidityPercent, clamped, tFine };
}

function compensatePressure(cal: Bme280Calibration, tFine: number, adcP: number): number {
  let var1 = tFine / 2 - 64000;
  let var2 = (var1 * var1 * cal.digP6) / 32768;
  var2 = var2 + var1 * cal.digP5 * 2;
  var2 = var2 / 4 + cal.digP4 * 65536;
  var1 = ((cal.digP3 * var1 * var1) / 524288 + cal.digP2 * var1) / 524288;
  var1 = (1 + var1 / 32768) * cal.digP1;
  // A divisor of zero or below (dig_P1 of 0 is unprogrammed NVM) gives no pressure; -Infinity makes the
  // caller clamp it to the minimum and flag it, where Bosch's code returns the minimum without saying so.
  if (var1 <= 0) return -Infinity;
  let p = 1048576 - adcP;
  p = ((p - var2 / 4096) * 6250) / var1;
  var1 = (cal.digP9 * p * p) / 2147483648;
  var2 = (p * cal.digP8) / 32768;
  return p + (var1 + var2 + cal.digP7) / 16;
}

function compensateHumidity(cal: Bme280Calibration, tFine: number, adcH: number): number {
  let h = tFine - 76800;
  h =
    (adcH - (cal.digH4 * 64 + (cal.digH5 / 16384) * h)) *
    ((cal.digH2 / 65536) * (1 + (cal.digH6 / 67108864) * h * (1 + (cal.digH3 / 67108864) * h)));
  return h * (1 - (cal.digH1 * h) / 524288);
}
