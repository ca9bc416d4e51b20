import type { Clock } from '../firmware/clock.js';
import type { GpioBusConfig, I2cBusConfig, LoadedBoard, SerialBusConfig } from '../firmware/config/types.js';
import { openSysfsGpio } from './gpio/onoff.js';
import type { GpioController } from './gpio-pin.js';
import { createSimGpio } from './gpio/sim.js';
import type { I2cBus } from './i2c-bus.js';
import { openI2cDev } from './i2c/i2c-dev.js';
import { createSimI2cBus } from './i2c/sim.js';
import type { SerialOpener } from './serial-port.js';
import { serialportOpener } from './serial/serialport.js';
import { createSimSerial } from './serial/sim.js';
import { realTimers, type Timers } from './timers.js';

/**
 * Opens the buses a board declares. The device manager asks once per bus; the provider decides what is
 * behind it. createBusProvider() follows each bus's "provider" field; tests pass their own fakes.
 */
export interface BusProvider {
  gpio(config: GpioBusConfig): Promise<GpioController>;
  i2c(config: I2cBusConfig): Promise<I2cBus>;
  serial(config: SerialBusConfig): SerialOpener;
  /** Closes everything this provider opened. */
  close(): Promise<void>;
}

/**
 * Real hardware for buses whose provider is sysfs / i2c-dev / serialport, simulations for provider "sim".
 * Hardware modules are imported only when a real bus is opened.
 */
export function createBusProvider(board: LoadedBoard, opts: { clock: Clock; timers?: Timers }): BusProvider {
  const timers = opts.timers ?? realTimers;
  const closers: (() => Promise<void>)[] = [];
  const track = <T extends { close(): Promise<void> }>(handle: T): T => {
    closers.push(() => handle.close());
    return handle;
  };
  return {
    async gpio(config) {
      return track(config.provider === 'sim' ? createSimGpio(config, timers) : await openSysfsGpio(config));
    },
    async i2c(config) {
      return track(
        config.provider === 'sim'
          ? createSimI2cBus(config, board.devices, opts.clock)
          : await openI2cDev(config.device),
      );
    },
    serial(config) {
      return config.provider === 'sim' ? createSimSerial(config, timers) : serialportOpener(config);
    },
    async close() {
      await Promise.allSettled(closers.splice(0).map((close) => close()));
    },
  };
}
