import type { ConfigNode } from '../../firmware/config/node.js';
import { hex } from '../i2c-bus.js';

/**
 * Reads a device's I2C address. JSON has no hex literals, so both 118 and "0x76" are accepted; only the
 * addresses the part can be strapped to (its datasheet) are valid.
 */
export function parseI2cAddress(node: ConfigNode, allowed: readonly number[]): number {
  const expected = `an I2C address, one of ${allowed.map(hex).join(', ')} (number or "0x.." string)`;
  const value = node.value;
  const address = typeof value === 'string' && /^0x[0-9a-f]{1,2}$/i.test(value) ? Number.parseInt(value, 16) : value;
  if (typeof address !== 'number' || !allowed.includes(address)) node.fail(expected);
  return address;
}

/** A pause measured on the injected timers (conversion times), so tests can step it. */
export function sleep(timers: { setTimeout(callback: () => void, ms: number): unknown }, ms: number): Promise<void> {
  return new Promise((resolve) => {
    timers.setTimeout(resolve, ms);
  });
}
