import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import { hex, I2cError, type I2cBus } from '../i2c-bus.js';
import {
  BME280_CALIB_HIGH_BYTES,
  BME280_CALIB_HIGH_REGISTER,
  BME280_CALIB_LOW_BYTES,
  BME280_CALIB_LOW_REGISTER,
  compensateBme280,
  parseBme280Calibration,
  type Bme280Calibration,
} from './bme280-compensation.js';
import { parseI2cAddress, sleep } from './settings.js';

/** Register addresses from the BME280 datasheet section 5.3, "Memory map" (Table 18). */
export const BME280_REG = {
  id: 0xd0,
  reset: 0xe0,
  ctrlHum: 0xf2,
  status: 0xf3,
  ctrlMeas: 0xf4,
  config: 0xf5,
  data: 0xf7,
} as const;
/** Section 5.4.1: the chip id register reads 0x60 on a BME280 (a BMP280 reads 0x56-0x58). */
export const BME280_CHIP_ID = 0x60;
/** Section 5.4.2: writing 0xB6 to the reset register performs a power-on reset. */
const BME280_RESET_COMMAND = 0xb6;
/** Section 1 (Table 1): start-up time after power-on or reset is at most 2 ms. */
const BME280_STARTUP_MS = 2;
/** 0xF7..0xFE: press_msb/lsb/xlsb, temp_msb/lsb/xlsb, hum_msb/lsb (section 5.4.7-5.4.9). */
const BME280_DATA_BYTES = 8;
/** Status register bits (section 5.4.4): measuring[3], im_update[0]. */
const BME280_STATUS_MEASURING = 0x08;
const BME280_STATUS_IM_UPDATE = 0x01;
/** How many times the status register is polled for a finished conversion before the sample fails. */
const BME280_STATUS_POLLS_MAX = 5;
/** Wait between status polls, ms: with BME280_STATUS_POLLS_MAX it bounds the wait for a status bit to clear. */
const BME280_STATUS_POLL_MS = 2;
/** Section 5.4.5 mode[1:0]: 01 forces one measurement, then the device returns to sleep (section 3.3.3). */
const BME280_MODE_FORCED = 0x01;
/** Sections 5.4.3 and 5.4.5: osrs codes 1..5 mean oversampling ×1, ×2, ×4, ×8, ×16. */
const OVERSAMPLING_CODES: Record<number, number> = { 1: 1, 2: 2, 4: 3, 8: 4, 16: 5 };

export interface Bme280Settings {
  /** 0x76 with SDO to GND, 0x77 with SDO to VDDIO (section 6.2). */
  address: number;
  /** Oversampling applied to temperature, pressure and humidity alike: 1, 2, 4, 8 or 16. Default 1. */
  oversampling: number;
}

/** Section 9.1 (Appendix B), maximum measurement time: 1.25 + 2.3·T + (2.3·P + 0.575) + (2.3·H + 0.575) ms. */
export function bme280MeasurementMs(oversampling: number): number {
  return Math.ceil(1.25 + 2.3 * oversampling + 2 * (2.3 * oversampling + 0.575));
}

class Bme280 implements DriverInstance {
  private calibration: Bme280Calibration | undefined;

  constructor(
    private readonly ctx: DriverContext<Bme280Settings>,
    private readonly bus: I2cBus,
  ) {}

  async init(): Promise<void> {
    const { address } = this.ctx.settings;
    const [id] = await this.bus.readRegister(address, BME280_REG.id, 1);
    if (id !== BME280_CHIP_ID) {
      throw new I2cError(
        'IO',
        `device at ${hex(address)} has chip id ${hex(id ?? 0)}, a BME280 has ${hex(BME280_CHIP_ID)}`,
      );
    }
    await this.bus.write(address, Buffer.from([BME280_REG.reset, BME280_RESET_COMMAND]));
    await sleep(this.ctx.timers, BME280_STARTUP_MS);
    // im_update is set while the NVM trimming data is copied to the image registers (section 5.4.4).
    await this.waitStatusClear(BME280_STATUS_IM_UPDATE, 'NVM copy');
    const low = await this.bus.readRegister(address, BME280_CALIB_LOW_REGISTER, BME280_CALIB_LOW_BYTES);
    const high = await this.bus.readRegister(address, BME280_CALIB_HIGH_REGISTER, BME280_CALIB_HIGH_BYTES);
    this.calibration = parseBme280Calibration(low, high);
    await this.bus.write(address, Buffer.from([BME280_REG.config, 0x00]));
  }

  async sample(): Promise<ReadingValues> {
    const { address, oversampling } = this.ctx.settings;
    const cal = this.calibration;
    if (!cal) throw new Error('bme280: sample() before init()');
    const code = OVERSAMPLING_CODES[oversampling]!;
    // Section 5.4.3: ctrl_hum takes effect at the next ctrl_meas write. It is written before every one
    // because a brown-out resets it to 0 (humidity skipped) while the calibration, in NVM, survives.
    await this.bus.write(address, Buffer.from([BME280_REG.ctrlHum, code]));
    await this.bus.write(address, Buffer.from([BME280_REG.ctrlMeas, (code << 5) | (code << 2) | BME280_MODE_FORCED]));
    await sleep(this.ctx.timers, bme280MeasurementMs(oversampling));
    await this.waitStatusClear(BME280_STATUS_MEASURING, 'measurement');
    const raw = await this.bus.readRegister(address, BME280_REG.data, BME280_DATA_BYTES);
    // 20-bit pressure and temperature (msb, lsb, xlsb[7:4]) and 16-bit humidity, sections 5.4.7-5.4.9.
    const adc = {
      pressure: (raw[0]! << 12) | (raw[1]! << 4) | (raw[2]! >> 4),
      temperature: (raw[3]! << 12) | (raw[4]! << 4) | (raw[5]! >> 4),
      humidity: (raw[6]! << 8) | raw[7]!,
    };
    const result = compensateBme280(cal, adc);
    return {
      temperatureC: round(result.temperatureC, 2),
      pressurePa: round(result.pressurePa, 1),
      humidityPercent: round(result.humidityPercent, 2),
      outOfRange: result.clamped.length === 0 ? null : result.clamped.join(','),
    };
  }

  async close(): Promise<void> {
    this.calibration = undefined;
  }

  private async waitStatusClear(mask: number, what: string): Promise<void> {
    for (let poll = 0; poll < BME280_STATUS_POLLS_MAX; poll++) {
      const [status] = await this.bus.readRegister(this.ctx.settings.address, BME280_REG.status, 1);
      if (((status ?? 0) & mask) === 0) return;
      await sleep(this.ctx.timers, BME280_STATUS_POLL_MS);
    }
    throw new I2cError('IO', `bme280 at ${hex(this.ctx.settings.address)}: ${what} did not finish`);
  }
}

function round(value: number | null, decimals: number): number | null {
  if (value === null) return null;
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

export const bme280Driver = defineDriver<Bme280Settings, 'i2c'>({
  compatible: 'bosch,bme280',
  busKind: 'i2c',
  sensor: 'bme280',
  pollIntervalMsDefault: 10_000,
  settingsFields: ['address', 'oversampling'],
  parseSettings(node: ConfigNode): Bme280Settings {
    const oversamplingNode: ConfigNode = node.field('oversampling');
    const oversampling = oversamplingNode.missing ? 1 : oversamplingNode.value;
    if (typeof oversampling !== 'number' || !(oversampling in OVERSAMPLING_CODES)) {
      oversamplingNode.fail('an oversampling factor: 1, 2, 4, 8 or 16');
    }
    return { address: parseI2cAddress(node.field('address'), [0x76, 0x77]), oversampling };
  },
  claims: (settings) => [`address ${hex(settings.address)}`],
  create: (ctx, bus) => new Bme280(ctx, bus),
});
