import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import { hex, I2cError, type I2cBus } from '../i2c-bus.js';
import { parseI2cAddress, sleep } from './settings.js';

/** Pointer register values, ADS1115 datasheet (SBAS444) section 9.6.1. */
export const ADS1115_REG = { conversion: 0x00, config: 0x01 } as const;
/** Section 9.6.3, Table 8: PGA[11:9] code per full-scale range in volts (FSR = ±value). */
export const ADS1115_PGA_CODES: Record<string, number> = {
  '6.144': 0b000,
  '4.096': 0b001,
  '2.048': 0b010,
  '1.024': 0b011,
  '0.512': 0b100,
  '0.256': 0b101,
};
/** Config bits (Table 8): OS[15] starts a single conversion / reads 1 when idle; MODE[8] = 1 single-shot;
 * DR[7:5] = 100 is 128 samples/s; COMP_QUE[1:0] = 11 disables the comparator. */
const CONFIG_OS = 0x8000;
const CONFIG_MODE_SINGLE = 0x0100;
const CONFIG_DR_128_SPS = 0x0080;
const CONFIG_COMP_DISABLE = 0x0003;
/** MUX[14:12] = 100 + n selects AINn against GND (Table 8). */
const MUX_SINGLE_ENDED_BASE = 0b100;
/** One conversion at 128 SPS takes 1/128 s = 7.8 ms; allow for the oscillator's ±10 % (section 7.5). */
const ADS1115_CONVERSION_MS = 9;
/** Status polls, one conversion time apart, before a conversion counts as failed: a live chip is done in one. */
const ADS1115_READY_POLLS_MAX = 5;
/** Codes are 16-bit two's complement: full scale is 2^15 codes (section 9.3.3, Table 3). */
const ADS1115_CODES_FULL_SCALE = 32768;

export interface Ads1115Channel {
  /** Single-ended input AIN0..AIN3. */
  input: number;
  /** Name used in the reading, e.g. "battery" gives "batteryV". Default "ain<input>". */
  name: string;
  /** Full-scale range in volts, chosen by the PGA: 6.144, 4.096, 2.048 (default), 1.024, 0.512 or 0.256. */
  fullScaleV: number;
}

export interface Ads1115Settings {
  /** 0x48..0x4B, set by strapping ADDR to GND, VDD, SDA or SCL (section 9.5.1.1, Table 4). */
  address: number;
  channels: Ads1115Channel[];
}

/** Volts for a conversion code at a given full-scale range (LSB = FSR / 2^15, Table 3). */
export function ads1115CodeToVolts(code: number, fullScaleV: number): number {
  return (code * fullScaleV) / ADS1115_CODES_FULL_SCALE;
}

export function ads1115Config(channel: Ads1115Channel): number {
  const pga = ADS1115_PGA_CODES[channel.fullScaleV.toFixed(3)]!;
  return (
    CONFIG_OS |
    ((MUX_SINGLE_ENDED_BASE + channel.input) << 12) |
    (pga << 9) |
    CONFIG_MODE_SINGLE |
    CONFIG_DR_128_SPS |
    CONFIG_COMP_DISABLE
  );
}

class Ads1115 implements DriverInstance {
  constructor(
    private readonly ctx: DriverContext<Ads1115Settings>,
    private readonly bus: I2cBus,
  ) {}

  async init(): Promise<void> {
    // The config register resets to 0x8583 (Table 8); reading it proves an ADS111x answers here.
    const config = await this.bus.readRegister(this.ctx.settings.address, ADS1115_REG.config, 2);
    if ((config.readUInt16BE(0) & CONFIG_COMP_DISABLE) !== CONFIG_COMP_DISABLE && config.readUInt16BE(0) === 0) {
      throw new I2cError('IO', `device at ${hex(this.ctx.settings.address)} does not look like an ADS1115`);
    }
  }

  async sample(): Promise<ReadingValues> {
    const values: ReadingValues = {};
    for (const channel of this.ctx.settings.channels) {
      const code = await this.convert(channel);
      values[`${channel.name}V`] = Math.round(ads1115CodeToVolts(code, channel.fullScaleV) * 1e6) / 1e6;
    }
    return values;
  }

  async close(): Promise<void> {}

  private async convert(channel: Ads1115Channel): Promise<number> {
    const { address } = this.ctx.settings;
    const config = ads1115Config(channel);
    await this.bus.write(address, Buffer.from([ADS1115_REG.config, config >> 8, config & 0xff]));
    await sleep(this.ctx.timers, ADS1115_CONVERSION_MS);
    for (let poll = 0; poll < ADS1115_READY_POLLS_MAX; poll++) {
      const status = await this.bus.readRegister(address, ADS1115_REG.config, 2);
      if (status.readUInt16BE(0) & CONFIG_OS) {
        return (await this.bus.readRegister(address, ADS1115_REG.conversion, 2)).readInt16BE(0);
      }
      await sleep(this.ctx.timers, ADS1115_CONVERSION_MS);
    }
    throw new I2cError('IO', `ads1115 at ${hex(address)}: conversion on AIN${channel.input} did not finish`);
  }
}

const ADS1115_CHANNEL_NAME = /^[a-z][A-Za-z0-9]{0,31}$/;

function parseChannels(node: ConfigNode): Ads1115Channel[] {
  const items = node.items('an array of 1 to 4 channels like {"input": 0, "fullScaleV": 4.096}', 1, 4);
  const seen = new Set<number>();
  return items.map((channelNode) => {
    channelNode.keys(['input', 'name', 'fullScaleV']);
    const input = channelNode.field('input').integer({ min: 0, max: 3 });
    if (seen.has(input)) channelNode.field('input').fail('an input not already listed');
    seen.add(input);
    const fsNode: ConfigNode = channelNode.field('fullScaleV');
    const fullScaleV = fsNode.missing ? 2.048 : fsNode.value;
    if (typeof fullScaleV !== 'number' || !(fullScaleV.toFixed(3) in ADS1115_PGA_CODES)) {
      fsNode.fail('a full-scale range: 6.144, 4.096, 2.048, 1.024, 0.512 or 0.256 (V)');
    }
    const name = channelNode.field('name').string({
      default: `ain${input}`,
      pattern: ADS1115_CHANNEL_NAME,
      describe: 'a camelCase name like "battery"',
    });
    return { input, name, fullScaleV };
  });
}

export const ads1115Driver = defineDriver<Ads1115Settings, 'i2c'>({
  compatible: 'ti,ads1115',
  busKind: 'i2c',
  sensor: 'ads1115',
  pollIntervalMsDefault: 10_000,
  settingsFields: ['address', 'channels'],
  parseSettings(node: ConfigNode): Ads1115Settings {
    return {
      address: parseI2cAddress(node.field('address'), [0x48, 0x49, 0x4a, 0x4b]),
      channels: parseChannels(node.field('channels')),
    };
  },
  claims: (settings) => [`address ${hex(settings.address)}`],
  create: (ctx, bus) => new Ads1115(ctx, bus),
});
