import type { ConfigNode } from '../../firmware/config/node.js';
import { BCM_PIN_MAX, type PinLevel } from '../gpio-pin.js';

/** Debounce windows beyond a second would hide real events (a door opened and shut again). */
export const GPIO_DEBOUNCE_MS_MAX = 1000;

export function parseBcmPin(node: ConfigNode): number {
  return node.integer({ min: 0, max: BCM_PIN_MAX, unit: 'BCM pin number' });
}

/** Physical level for a logical state: relay boards and LEDs wired to 3V3 are often active-low. */
export function levelFor(on: boolean, activeLow: boolean): PinLevel {
  return on !== activeLow ? 1 : 0;
}
