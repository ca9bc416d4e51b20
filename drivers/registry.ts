import { digitalInputDriver } from './gpio/digital-input.js';
import { pulseCounterDriver } from './gpio/pulse-counter.js';
import { relayDriver } from './gpio/relay.js';
import { statusLedDriver } from './gpio/status-led.js';
import { ads1115Driver } from './i2c/ads1115.js';
import { bme280Driver } from './i2c/bme280.js';
import { sht3xDriver } from './i2c/sht3x.js';
import type { AnyDriverDefinition } from './model.js';
import { gpsDriver } from './serial/gps.js';
import { lineSensorDriver } from './serial/line-sensor.js';

/** Every driver, by its compatible string. Board files may only name these. */
export const DRIVERS: ReadonlyMap<string, AnyDriverDefinition> = new Map(
  [
    bme280Driver,
    sht3xDriver,
    ads1115Driver,
    digitalInputDriver,
    pulseCounterDriver,
    relayDriver,
    statusLedDriver,
    gpsDriver,
    lineSensorDriver,
  ].map((driver) => [driver.compatible, driver]),
);
