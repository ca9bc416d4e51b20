import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance } from '../model.js';
import type { CancelTimer } from '../timers.js';
import type { DigitalPin, GpioController, PinLevel } from '../gpio-pin.js';
import { GPIO_DEBOUNCE_MS_MAX, parseBcmPin } from './settings.js';

export interface DigitalInputSettings {
  pin: number;
  /** A level must hold this long before it counts, in ms; absorbs contact bounce. Default 50. */
  debounceMs: number;
  /** True when the contact pulls the line low when active (a reed switch to GND with a pull-up). Default false. */
  activeLow: boolean;
  /** Names the active/inactive states in readings, e.g. "open"/"closed". Default "active"/"inactive". */
  activeName: string;
  inactiveName: string;
}

/**
 * A digital input (door contact, button). Every edge restarts a debounce timer; when the line has been
 * quiet for debounceMs, the settled level is reported if it differs from the last one. One reading is
 * emitted at start so the cloud knows the state without waiting for a change.
 */
class DigitalInput implements DriverInstance {
  private pin: DigitalPin | undefined;
  private stable: PinLevel | undefined;
  private latest: PinLevel = 0;
  private cancelDebounce: CancelTimer | undefined;
  private changes = 0;

  constructor(
    private readonly ctx: DriverContext<DigitalInputSettings>,
    private readonly gpio: GpioController,
  ) {}

  async init(): Promise<void> {
    this.pin = await this.gpio.open(this.ctx.settings.pin, { direction: 'in', edge: 'both' });
    this.pin.watch((level) => this.onEdge(level));
    this.latest = await this.pin.read();
    this.publish(this.latest);
  }

  async close(): Promise<void> {
    this.cancelDebounce?.();
    await this.pin?.close();
    this.pin = undefined;
  }

  private onEdge(level: PinLevel): void {
    this.latest = level;
    this.cancelDebounce?.();
    this.cancelDebounce = this.ctx.timers.setTimeout(() => {
      this.cancelDebounce = undefined;
      if (this.latest !== this.stable) this.publish(this.latest);
    }, this.ctx.settings.debounceMs);
  }

  private publish(level: PinLevel): void {
    if (this.stable !== undefined) this.changes++;
    this.stable = level;
    const { activeLow, activeName, inactiveName } = this.ctx.settings;
    const active = (level === 1) !== activeLow;
    this.ctx.emit({ active, state: active ? activeName : inactiveName, level, changes: this.changes });
  }
}

export const digitalInputDriver = defineDriver<DigitalInputSettings, 'gpio'>({
  compatible: 'outpost,gpio-input',
  busKind: 'gpio',
  sensor: 'gpio-input',
  settingsFields: ['pin', 'debounceMs', 'activeLow', 'activeName', 'inactiveName'],
  parseSettings(node: ConfigNode): DigitalInputSettings {
    return {
      pin: parseBcmPin(node.field('pin')),
      debounceMs: node.field('debounceMs').integer({ min: 0, max: GPIO_DEBOUNCE_MS_MAX, unit: 'ms', default: 50 }),
      activeLow: node.field('activeLow').boolean({ default: false }),
      activeName: node.field('activeName').string({ default: 'active' }),
      inactiveName: node.field('inactiveName').string({ default: 'inactive' }),
    };
  },
  claims: (settings) => [`pin ${settings.pin}`],
  create: (ctx, gpio) => new DigitalInput(ctx, gpio),
});
