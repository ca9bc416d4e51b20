import { I2cError } from '../i2c-bus.js';
import type { FakeI2cDevice } from './fake-bus.js';
import { sensirionCrc8 } from './crc8.js';

/**
 * An SHT3x-DIS as the bus sees it (datasheet section 4): 16-bit commands, single-shot measurements that
 * finish instantly, results as [msb, lsb, crc] words. Like the part without clock stretching, a read with no
 * measurement pending is not acknowledged (section 4.4).
 */
export class FakeSht3x implements FakeI2cDevice {
  private pending: Buffer | undefined;
  private temperatureC: number;
  private humidityPercent: number;
  private corruptNext = false;
  /** Status word (section 4.11); bit 4 "system reset detected" is set after a reset. */
  private status = 0x0010;

  constructor(
    reading: { temperatureC: number; humidityPercent: number } = { temperatureC: 21.5, humidityPercent: 45 },
  ) {
    this.temperatureC = reading.temperatureC;
    this.humidityPercent = reading.humidityPercent;
  }

  set(reading: Partial<{ temperatureC: number; humidityPercent: number }>): void {
    this.temperatureC = reading.temperatureC ?? this.temperatureC;
    this.humidityPercent = reading.humidityPercent ?? this.humidityPercent;
  }

  /** The next result frame carries a wrong CRC in its first word (noise on SDA). */
  corruptNextFrame(): void {
    this.corruptNext = true;
  }

  write(data: Buffer): void {
    if (data.length !== 2) throw new I2cError('NACK', 'sht3x: commands are 16 bits');
    const command = data.readUInt16BE(0);
    if (command === 0x30a2) {
      this.status = 0x0010;
      this.pending = undefined;
    } else if (command === 0xf32d) {
      this.pending = words([this.status]);
    } else if (command === 0x2400 || command === 0x240b || command === 0x2416) {
      this.pending = words([rawTemperature(this.temperatureC), rawHumidity(this.humidityPercent)]);
    } else {
      throw new I2cError('NACK', `sht3x: unknown command 0x${command.toString(16)}`);
    }
  }

  read(length: number): Buffer {
    const pending = this.pending;
    if (!pending) throw new I2cError('NACK', 'sht3x: no measurement pending');
    this.pending = undefined;
    const frame = Buffer.alloc(length, 0xff);
    pending.copy(frame, 0, 0, Math.min(length, pending.length));
    if (this.corruptNext) {
      frame[2] = frame[2]! ^ 0x01;
      this.corruptNext = false;
    }
    return frame;
  }
}

/** Inverse of section 4.13's conversion, clamped to the 16-bit range. */
function rawTemperature(celsius: number): number {
  return clamp16(Math.round(((celsius + 45) * 65535) / 175));
}

function rawHumidity(percent: number): number {
  return clamp16(Math.round((percent * 65535) / 100));
}

function clamp16(value: number): number {
  return Math.min(0xffff, Math.max(0, value));
}

function words(values: number[]): Buffer {
  const out = Buffer.alloc(values.length * 3);
  values.forEach((value, index) => {
    out.writeUInt16BE(value, index * 3);
    out[index * 3 + 2] = sensirionCrc8(out.subarray(index * 3, index * 3 + 2));
  });
  return out;
}
