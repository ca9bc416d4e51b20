import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type LinkState } from '../model.js';
import type { CancelTimer } from '../timers.js';
import type { DigitalPin, GpioController } from '../gpio-pin.js';
import { levelFor, parseBcmPin } from './settings.js';

export type LedPattern = 'online' | 'backlog' | 'offline';

/**
 * On/off step lengths in ms for each pattern, so the state reads from across a room:
 * online = steady on; backlog (online, draining stored records) = fast even blink;
 * offline = a short flash every two seconds (alive, but no uplink).
 */
export const LED_PATTERN_STEPS_MS: Record<LedPattern, readonly [onMs: number, offMs: number] | 'steady'> = {
  online: 'steady',
  backlog: [200, 200],
  offline: [100, 1900],
};

export interface StatusLedSettings {
  pin: number;
  activeLow: boolean;
}

export function patternFor(state: LinkState): LedPattern {
  if (!state.online) return 'offline';
  return state.backlogRecords > 0 ? 'backlog' : 'online';
}

/** The gateway's status LED, driven from setLinkState(); shows "offline" until told otherwise. */
class StatusLed implements DriverInstance {
  private pin: DigitalPin | undefined;
  private pattern: LedPattern = 'offline';
  private lit = false;
  private cancelStep: CancelTimer | undefined;

  constructor(
    private readonly ctx: DriverContext<StatusLedSettings>,
    private readonly gpio: GpioController,
  ) {}

  async init(): Promise<void> {
    this.pin = await this.gpio.open(this.ctx.settings.pin, {
      direction: 'out',
      initial: levelFor(false, this.ctx.settings.activeLow),
    });
    this.show('offline');
  }

  onLinkState(state: LinkState): void {
    const pattern = patternFor(state);
    if (pattern !== this.pattern) this.show(pattern);
  }

  async close(): Promise<void> {
    this.cancelStep?.();
    await this.pin?.close();
    this.pin = undefined;
  }

  private show(pattern: LedPattern): void {
    this.pattern = pattern;
    this.ctx.report({ ledPattern: pattern });
    this.cancelStep?.();
    this.step(true);
  }

  private step(on: boolean): void {
    const steps = LED_PATTERN_STEPS_MS[this.pattern];
    this.drive(steps === 'steady' ? true : on);
    if (steps === 'steady') return;
    this.cancelStep = this.ctx.timers.setTimeout(() => this.step(!on), on ? steps[0] : steps[1]);
  }

  private drive(on: boolean): void {
    if (!this.pin || on === this.lit) return;
    this.lit = on;
    this.pin.write(levelFor(on, this.ctx.settings.activeLow)).catch((error: Error) => this.ctx.fault(error));
  }
}

export const statusLedDriver = defineDriver<StatusLedSettings, 'gpio'>({
  compatible: 'outpost,status-led',
  busKind: 'gpio',
  sensor: 'status-led',
  settingsFields: ['pin', 'activeLow'],
  parseSettings(node: ConfigNode): StatusLedSettings {
    return {
      pin: parseBcmPin(node.field('pin')),
      activeLow: node.field('activeLow').boolean({ default: false }),
    };
  },
  claims: (settings) => [`pin ${settings.pin}`],
  create: (ctx, gpio) => new StatusLed(ctx, gpio),
});
