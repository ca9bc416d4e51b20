import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import { hex, I2cError, type I2cBus } from '../i2c-bus.js';
import { sensirionCrc8 } from './crc8.js';
import { parseI2cAddress, sleep } from './settings.js';

/**
 * Commands from the SHT3x-DIS datasheet, section 4: single shot without clock stretching (Table 9; the Pi's
 * I2C controller handles clock stretching badly), soft reset (4.9) and read status (4.11).
 */
export const SHT3X_COMMANDS = {
  measureHigh: 0x2400,
  measureMedium: 0x240b,
  measureLow: 0x2416,
  softReset: 0x30a2,
  readStatus: 0xf32d,
} as const;
/** Table 4, maximum measurement duration per repeatability, in ms (rounded up). */
const SHT3X_MEASUREMENT_MS = { high: 16, medium: 7, low: 5 } as const;
/** Section 4.9 / Table 4: the sensor is ready at most 1.5 ms after a soft reset. */
const SHT3X_RESET_MS = 2;
/** Data words arrive as [msb, lsb, crc] (section 4.4). */
const SHT3X_WORD_BYTES = 3;

export type Sht3xRepeatability = keyof typeof SHT3X_MEASUREMENT_MS;

export interface Sht3xSettings {
  /** 0x44 with ADDR low, 0x45 with ADDR high (datasheet Table 7). */
  address: number;
  /** Measurement repeatability: "high" (default), "medium" or "low". */
  repeatability: Sht3xRepeatability;
}

/** Section 4.13: T = -45 + 175·S_T / (2^16 - 1) °C, RH = 100·S_RH / (2^16 - 1) %. */
export function convertSht3x(
  rawTemperature: number,
  rawHumidity: number,
): { temperatureC: number; humidityPercent: number } {
  return {
    temperatureC: -45 + (175 * rawTemperature) / 65535,
    humidityPercent: (100 * rawHumidity) / 65535,
  };
}

/** Splits [msb, lsb, crc]×n into words, rejecting the frame when any CRC fails. */
export function decodeSht3xWords(frame: Buffer, address: number): number[] {
  const words: number[] = [];
  for (let offset = 0; offset + SHT3X_WORD_BYTES <= frame.length; offset += SHT3X_WORD_BYTES) {
    const word = frame.subarray(offset, offset + 2);
    if (sensirionCrc8(word) !== frame[offset + 2]) {
      throw new I2cError('IO', `sht3x at ${hex(address)}: CRC mismatch in word ${offset / SHT3X_WORD_BYTES}`);
    }
    words.push(word.readUInt16BE(0));
  }
  return words;
}

class Sht3x implements DriverInstance {
  constructor(
    private readonly ctx: DriverContext<Sht3xSettings>,
    private readonly bus: I2cBus,
  ) {}

  async init(): Promise<void> {
    const { address } = this.ctx.settings;
    await this.command(SHT3X_COMMANDS.softReset);
    await sleep(this.ctx.timers, SHT3X_RESET_MS);
    // Reading the status word (with a valid CRC) proves a Sensirion part answers at this address.
    await this.command(SHT3X_COMMANDS.readStatus);
    decodeSht3xWords(await this.bus.read(address, SHT3X_WORD_BYTES), address);
  }

  async sample(): Promise<ReadingValues> {
    const { address, repeatability } = this.ctx.settings;
    const command =
      repeatability === 'high'
        ? SHT3X_COMMANDS.measureHigh
        : repeatability === 'medium'
          ? SHT3X_COMMANDS.measureMedium
          : SHT3X_COMMANDS.measureLow;
    await this.command(command);
    await sleep(this.ctx.timers, SHT3X_MEASUREMENT_MS[repeatability]);
    const [rawT, rawRh] = decodeSht3xWords(await this.bus.read(address, 2 * SHT3X_WORD_BYTES), address);
    const { temperatureC, humidityPercent } = convertSht3x(rawT!, rawRh!);
    return {
      temperatureC: Math.round(temperatureC * 100) / 100,
      humidityPercent: Math.round(humidityPercent * 100) / 100,
    };
  }

  async close(): Promise<void> {}

  private async command(code: number): Promise<void> {
    await this.bus.write(this.ctx.settings.address, Buffer.from([code >> 8, code & 0xff]));
  }
}

export const sht3xDriver = defineDriver<Sht3xSettings, 'i2c'>({
  compatible: 'sensirion,sht3x',
  busKind: 'i2c',
  sensor: 'sht3x',
  pollIntervalMsDefault: 10_000,
  settingsFields: ['address', 'repeatability'],
  parseSettings(node: ConfigNode): Sht3xSettings {
    return {
      address: parseI2cAddress(node.field('address'), [0x44, 0x45]),
      repeatability: node.field('repeatability').oneOf(['high', 'medium', 'low'], { default: 'high' }),
    };
  },
  claims: (settings) => [`address ${hex(settings.address)}`],
  create: (ctx, bus) => new Sht3x(ctx, bus),
});
