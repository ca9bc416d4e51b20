import type { GpioBusConfig } from '../../firmware/config/types.js';
import type { Timers } from '../timers.js';
import { FakeGpioController } from './fake.js';
import type { GpioController } from '../gpio-pin.js';

/**
 * The sim board's GPIO controller: fake pins, with the inputs named in the bus's simInputs driven by timers
 * (a door contact toggling every periodMs, a meter emitting pulsesPerSec). Stops when closed.
 */
export function createSimGpio(config: GpioBusConfig, timers: Timers): GpioController {
  const fake = new FakeGpioController();
  /** One pending timer per simulated input, replaced at every tick. */
  const cancels = new Map<number, () => void>();
  for (const [key, input] of Object.entries(config.simInputs)) {
    const pin = Number(key);
    if (input.kind === 'toggle') {
      let level: 0 | 1 = 0;
      const tick = (): void => {
        level = level ? 0 : 1;
        fake.drive(pin, level);
        cancels.set(pin, timers.setTimeout(tick, input.periodMs));
      };
      cancels.set(pin, timers.setTimeout(tick, input.periodMs));
    } else {
      const intervalMs = 1000 / input.pulsesPerSec;
      const tick = (): void => {
        fake.drive(pin, 1);
        fake.drive(pin, 0);
        cancels.set(pin, timers.setTimeout(tick, intervalMs));
      };
      cancels.set(pin, timers.setTimeout(tick, intervalMs));
    }
  }
  return {
    open: (bcmPin, mode) => fake.open(bcmPin, mode),
    async close() {
      for (const cancel of cancels.values()) cancel();
      cancels.clear();
      await fake.close();
    },
  };
}
