import type { Bme280Calibration } from './bme280-compensation.js';
import { RegisterMap } from './fake-bus.js';

/**
 * Trimming values from the BMP280 datasheet's worked example (section 3.12) for T and P; the BME280 shares
 * them. The humidity values are those of a real BME280 part (dig_H3 = 0 is common), since the BME280 datasheet
 * gives no worked humidity example.
 */
export const DATASHEET_CALIBRATION: Bme280Calibration = {
  digT1: 27504,
  digT2: 26435,
  digT3: -1000,
  digP1: 36477,
  digP2: -10685,
  digP3: 3024,
  digP4: 2855,
  digP5: 140,
  digP6: -7,
  digP7: 15500,
  digP8: -14600,
  digP9: 6000,
  digH1: 75,
  digH2: 362,
  digH3: 0,
  digH4: 313,
  digH5: 50,
  digH6: 30,
};

/** Raw ADC outputs of the worked example (BMP280 section 3.12): 25.08 °C, 100653.27 Pa. */
export const DATASHEET_ADC = { temperature: 519888, pressure: 415148, humidity: 30000 };

/** Datasheet section 5.4.7-5.4.9: a skipped or not-yet-run measurement reads 0x80000 (T, P) or 0x8000 (H). */
const SKIPPED_20_BIT = 0x80000;
const SKIPPED_16_BIT = 0x8000;

/**
 * A BME280 register map (datasheet section 5.3): chip id 0x60 at 0xD0, trimming data at 0x88..0xA1 and
 * 0xE1..0xE7 laid out per Table 16, data at 0xF7..0xFE latched when ctrl_meas starts a forced measurement.
 * Conversions finish instantly; the status register always reads idle.
 */
export class FakeBme280 extends RegisterMap {
  private adc: { temperature: number; pressure: number; humidity: number };
  /** Number of forced measurements the driver started. */
  measurements = 0;

  constructor(calibration: Bme280Calibration = DATASHEET_CALIBRATION, adc = DATASHEET_ADC) {
    super();
    this.adc = { ...adc };
    this.registers[0xd0] = 0x60;
    writeCalibration(this.registers, calibration);
    this.powerOnReset();
  }

  /** Sets what the next measurement converts (raw ADC counts, before compensation). */
  setAdc(adc: Partial<{ temperature: number; pressure: number; humidity: number }>): void {
    this.adc = { ...this.adc, ...adc };
  }

  protected override onWrite(register: number, value: number): void {
    if (register === 0xe0) {
      if (value === 0xb6) this.powerOnReset();
      return;
    }
    if (register !== 0xf2 && register !== 0xf4 && register !== 0xf5) return; // everything else is read-only
    this.registers[register] = value;
    if (register === 0xf4 && (value & 0x03) !== 0) this.measure(value);
  }

  private powerOnReset(): void {
    this.registers.fill(0, 0xf2, 0xf6);
    this.latch(SKIPPED_20_BIT, SKIPPED_20_BIT, SKIPPED_16_BIT);
  }

  private measure(ctrlMeas: number): void {
    this.measurements++;
    const osrsT = ctrlMeas >> 5;
    const osrsP = (ctrlMeas >> 2) & 0x07;
    const osrsH = this.registers[0xf2]! & 0x07;
    this.latch(
      osrsT ? this.adc.temperature : SKIPPED_20_BIT,
      osrsP ? this.adc.pressure : SKIPPED_20_BIT,
      osrsH ? this.adc.humidity : SKIPPED_16_BIT,
    );
    // Forced mode returns to sleep once the measurement is done (section 3.3.3).
    this.registers[0xf4] = ctrlMeas & 0xfc;
  }

  private latch(temperature: number, pressure: number, humidity: number): void {
    const r = this.registers;
    r[0xf7] = (pressure >> 12) & 0xff;
    r[0xf8] = (pressure >> 4) & 0xff;
    r[0xf9] = (pressure & 0x0f) << 4;
    r[0xfa] = (temperature >> 12) & 0xff;
    r[0xfb] = (temperature >> 4) & 0xff;
    r[0xfc] = (temperature & 0x0f) << 4;
    r[0xfd] = (humidity >> 8) & 0xff;
    r[0xfe] = humidity & 0xff;
  }
}

/** Lays the trimming parameters out as Table 16 does; written independently of the driver's parser. */
function writeCalibration(r: Buffer, c: Bme280Calibration): void {
  r.writeUInt16LE(c.digT1, 0x88);
  r.writeInt16LE(c.digT2, 0x8a);
  r.writeInt16LE(c.digT3, 0x8c);
  const pressure = [c.digP2, c.digP3, c.digP4, c.digP5, c.digP6, c.digP7, c.digP8, c.digP9];
  r.writeUInt16LE(c.digP1, 0x8e);
  pressure.forEach((value, index) => r.writeInt16LE(value, 0x90 + 2 * index));
  r[0xa1] = c.digH1;
  r.writeInt16LE(c.digH2, 0xe1);
  r[0xe3] = c.digH3;
  r[0xe4] = (c.digH4 >> 4) & 0xff;
  r[0xe5] = (c.digH4 & 0x0f) | ((c.digH5 & 0x0f) << 4);
  r[0xe6] = (c.digH5 >> 4) & 0xff;
  r.writeInt8(c.digH6, 0xe7);
}
