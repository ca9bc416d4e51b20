import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type MethodResult } from '../model.js';
import type { DigitalPin, GpioController } from '../gpio-pin.js';
import { levelFor, parseBcmPin } from './settings.js';

export interface RelaySettings {
  pin: number;
  /** Most relay boards energise the coil when the line is low. Default false. */
  activeLow: boolean;
  /** State driven at start, before any method call. Default false (off): a reboot must not switch loads on. */
  initialOn: boolean;
}

/**
 * A digital output (relay, LED) switched by direct methods and mirrored in reported properties:
 *   switch {"on": true|false} → 200 {"on": ...}; toggle → 200 {"on": ...}; get → 200 {"on": ...}.
 */
class Relay implements DriverInstance {
  private pin: DigitalPin | undefined;
  private on = false;
  readonly methods: Record<string, (payload: unknown) => Promise<MethodResult>> = {
    switch: async (payload) => {
      const on = (payload as { on?: unknown } | null)?.on;
      if (typeof on !== 'boolean')
        return { status: 400, payload: { error: 'payload must be {"on": true} or {"on": false}' } };
      return this.set(on);
    },
    toggle: async () => this.set(!this.on),
    get: async () => ({ status: 200, payload: { on: this.on } }),
  };

  constructor(
    private readonly ctx: DriverContext<RelaySettings>,
    private readonly gpio: GpioController,
  ) {}

  async init(): Promise<void> {
    const { pin, activeLow, initialOn } = this.ctx.settings;
    this.on = initialOn;
    this.pin = await this.gpio.open(pin, { direction: 'out', initial: levelFor(initialOn, activeLow) });
    this.ctx.report({ on: this.on });
  }

  async close(): Promise<void> {
    await this.pin?.close();
    this.pin = undefined;
  }

  private async set(on: boolean): Promise<MethodResult> {
    if (!this.pin) return { status: 503, payload: { error: 'relay is not open' } };
    await this.pin.write(levelFor(on, this.ctx.settings.activeLow));
    const changed = on !== this.on;
    this.on = on;
    if (changed) this.ctx.report({ on });
    return { status: 200, payload: { on } };
  }
}

export const relayDriver = defineDriver<RelaySettings, 'gpio'>({
  compatible: 'outpost,gpio-relay',
  busKind: 'gpio',
  sensor: 'relay',
  settingsFields: ['pin', 'activeLow', 'initialOn'],
  parseSettings(node: ConfigNode): RelaySettings {
    return {
      pin: parseBcmPin(node.field('pin')),
      activeLow: node.field('activeLow').boolean({ default: false }),
      initialOn: node.field('initialOn').boolean({ default: false }),
    };
  },
  claims: (settings) => [`pin ${settings.pin}`],
  create: (ctx, gpio) => new Relay(ctx, gpio),
});
