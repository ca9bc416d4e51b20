import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import type { DigitalPin, GpioController } from '../gpio-pin.js';
import { GPIO_DEBOUNCE_MS_MAX, parseBcmPin } from './settings.js';

export interface PulseCounterSettings {
  pin: number;
  /** Which transition is one pulse. Default "rising". */
  edge: 'rising' | 'falling';
  /** Edges closer than this to the last counted pulse are contact bounce, in ms. Default 0 (count all). */
  debounceMs: number;
  /** Meter constant, e.g. 0.5 (litres per pulse) or 0.001 (kWh per pulse). Optional, with unitName. */
  unitsPerPulse: number | undefined;
  /** Name of the metered quantity with its unit, e.g. "waterL", giving "waterL" and "waterLPerSec". */
  unitName: string | undefined;
}

/**
 * A pulse counter for S0 energy meters and flow meters. Counts edges as they happen; each sample reports the
 * pulses since the previous one and the rate over that interval, measured on the monotonic clock so a wall
 * clock step does not fake a burst.
 */
class PulseCounter implements DriverInstance {
  private pin: DigitalPin | undefined;
  private total = 0;
  private reported = 0;
  private lastSampleMonoMs = 0;
  private lastPulseMonoMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly ctx: DriverContext<PulseCounterSettings>,
    private readonly gpio: GpioController,
  ) {}

  async init(): Promise<void> {
    this.pin = await this.gpio.open(this.ctx.settings.pin, { direction: 'in', edge: this.ctx.settings.edge });
    this.lastSampleMonoMs = this.ctx.clock.monoMs();
    this.pin.watch(() => this.onPulse());
  }

  async sample(): Promise<ReadingValues> {
    const nowMs = this.ctx.clock.monoMs();
    const pulses = this.total - this.reported;
    const elapsedSecs = (nowMs - this.lastSampleMonoMs) / 1000;
    this.reported = this.total;
    this.lastSampleMonoMs = nowMs;
    const perSec = elapsedSecs > 0 ? pulses / elapsedSecs : 0;
    const values: ReadingValues = { pulses, pulsesTotal: this.total, pulsesPerSec: round(perSec) };
    const { unitsPerPulse, unitName } = this.ctx.settings;
    if (unitsPerPulse !== undefined && unitName !== undefined) {
      values[unitName] = round(this.total * unitsPerPulse);
      values[`${unitName}PerSec`] = round(perSec * unitsPerPulse);
    }
    return values;
  }

  async close(): Promise<void> {
    await this.pin?.close();
    this.pin = undefined;
  }

  private onPulse(): void {
    const nowMs = this.ctx.clock.monoMs();
    if (nowMs - this.lastPulseMonoMs < this.ctx.settings.debounceMs) return;
    this.lastPulseMonoMs = nowMs;
    this.total++;
  }
}

function round(value: number): number {
  return Math.round(value * 1e6) / 1e6;
}

export const pulseCounterDriver = defineDriver<PulseCounterSettings, 'gpio'>({
  compatible: 'outpost,gpio-pulse-counter',
  busKind: 'gpio',
  sensor: 'pulse-counter',
  pollIntervalMsDefault: 60_000,
  settingsFields: ['pin', 'edge', 'debounceMs', 'unitsPerPulse', 'unitName'],
  parseSettings(node: ConfigNode): PulseCounterSettings {
    const unitsNode = node.field('unitsPerPulse');
    const unitsPerPulse = unitsNode.missing ? undefined : unitsNode.value;
    if (unitsPerPulse !== undefined && (typeof unitsPerPulse !== 'number' || !(unitsPerPulse > 0))) {
      unitsNode.fail('a positive number (units per pulse)');
    }
    const unitName = node.field('unitName').optionalString();
    if ((unitsPerPulse === undefined) !== (unitName === undefined)) {
      node
        .field(unitName === undefined ? 'unitName' : 'unitsPerPulse')
        .fail('to be set together with unitsPerPulse and unitName');
    }
    if (unitName !== undefined && !/^[a-z][A-Za-z0-9]{0,31}$/.test(unitName)) {
      node.field('unitName').fail('a camelCase name with its unit, like "waterL"');
    }
    return {
      pin: parseBcmPin(node.field('pin')),
      edge: node.field('edge').oneOf(['rising', 'falling'], { default: 'rising' }),
      debounceMs: node.field('debounceMs').integer({ min: 0, max: GPIO_DEBOUNCE_MS_MAX, unit: 'ms', default: 0 }),
      unitsPerPulse: unitsPerPulse as number | undefined,
      unitName,
    };
  },
  claims: (settings) => [`pin ${settings.pin}`],
  create: (ctx, gpio) => new PulseCounter(ctx, gpio),
});
