import type { Clock } from '../../firmware/clock.js';
import type { DeviceConfig, I2cBusConfig } from '../../firmware/config/types.js';
import type { Ads1115Settings } from './ads1115.js';
import type { Bme280Settings } from './bme280.js';
import type { I2cBus } from '../i2c-bus.js';
import { FakeAds1115 } from './fake-ads1115.js';
import { DATASHEET_ADC, FakeBme280 } from './fake-bme280.js';
import { FakeI2cBus } from './fake-bus.js';
import { FakeSht3x } from './fake-sht3x.js';
import type { Sht3xSettings } from './sht3x.js';

/** Simulated weather changes over this period, slow enough to look like a room, fast enough to watch. */
const SIM_DRIFT_PERIOD_MS = 10 * 60_000;

/**
 * The sim board's I2C bus: register-map fakes for every device the board puts on this bus, with raw values
 * drifting slowly (a sine over SIM_DRIFT_PERIOD_MS) as the monotonic clock advances.
 */
export function createSimI2cBus(config: I2cBusConfig, devices: DeviceConfig[], clock: Clock): I2cBus {
  const fake = new FakeI2cBus();
  const drifters: ((phase: number) => void)[] = [];
  for (const device of devices) {
    if (device.bus !== config.id || device.status !== 'okay') continue;
    if (device.compatible === 'bosch,bme280') {
      const bme = new FakeBme280();
      fake.attach((device.settings as Bme280Settings).address, bme);
      // ±6000 counts of adc_T is about ±2 °C around the datasheet example's 25.08 °C; ±2000 of adc_P ±340 Pa.
      drifters.push((phase) =>
        bme.setAdc({
          temperature: DATASHEET_ADC.temperature + Math.round(6000 * Math.sin(phase)),
          pressure: DATASHEET_ADC.pressure + Math.round(2000 * Math.cos(phase)),
          humidity: DATASHEET_ADC.humidity + Math.round(1500 * Math.sin(phase / 2)),
        }),
      );
    } else if (device.compatible === 'sensirion,sht3x') {
      const sht = new FakeSht3x();
      fake.attach((device.settings as Sht3xSettings).address, sht);
      drifters.push((phase) =>
        sht.set({ temperatureC: 21.5 + 1.5 * Math.sin(phase), humidityPercent: 45 + 5 * Math.cos(phase) }),
      );
    } else if (device.compatible === 'ti,ads1115') {
      const adc = new FakeAds1115();
      fake.attach((device.settings as Ads1115Settings).address, adc);
      // A 12 V battery through a 1:4 divider on AIN0 and a slowly breathing 0..3.3 V signal on the others.
      drifters.push((phase) => {
        adc.setInput(0, 3.1 + 0.1 * Math.sin(phase));
        for (let input = 1; input < 4; input++) adc.setInput(input, 1.65 + 1.5 * Math.sin(phase + input));
      });
    }
  }
  const drift = (): void => {
    const phase = (2 * Math.PI * clock.monoMs()) / SIM_DRIFT_PERIOD_MS;
    for (const apply of drifters) apply(phase);
  };
  return {
    write: (address, data) => {
      drift();
      return fake.write(address, data);
    },
    read: (address, length) => fake.read(address, length),
    readRegister: (address, register, length) => {
      drift();
      return fake.readRegister(address, register, length);
    },
    close: () => fake.close(),
  };
}
