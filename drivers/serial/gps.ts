import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import { SerialLines } from './line-device.js';
import { SERIAL_LINE_BYTES_MAX } from './lines.js';
import { GPS_EPOCH_SENTENCES_MAX, GpsEpochAssembler, type GpsEpoch } from './gps-epoch.js';
import { GpsDateTracker, gpsReading } from './gps-reading.js';
import { parseGga, parseNmea, parseRmc, parseZda } from './nmea.js';
import type { SerialOpener } from '../serial-port.js';

export interface GpsSettings {
  /** Longest line kept, in bytes. Default SERIAL_LINE_BYTES_MAX. */
  lineBytesMax: number;
}

/**
 * An NMEA 0183 GPS receiver. GGA (position, quality, satellites, altitude), RMC (validity, position, date,
 * speed, course) and ZDA (date) from any talker (GP, GN, GL...) are gathered per epoch (GpsEpochAssembler), so
 * a reading never mixes two epochs; every other sentence, proprietary ones included, is ignored; a line that
 * is not a sentence, is longer than NMEA allows or fails its checksum is counted as malformed. Each poll
 * reports the latest whole epoch once, so a 1 Hz receiver does not fill the log at 1 Hz.
 */
class Gps implements DriverInstance {
  private readonly lines: SerialLines;
  private readonly epochs = new GpsEpochAssembler((epoch) => this.onEpoch(epoch));
  private readonly dates: GpsDateTracker;
  private latest: ReadingValues | undefined;

  constructor(
    private readonly ctx: DriverContext<GpsSettings>,
    opener: SerialOpener,
  ) {
    this.lines = new SerialLines(ctx as DriverContext<unknown>, opener, ctx.settings.lineBytesMax, (line) =>
      this.onLine(line),
    );
    this.dates = new GpsDateTracker(ctx.clock);
  }

  init(): Promise<void> {
    return this.lines.open();
  }

  async sample(): Promise<ReadingValues | undefined> {
    const latest = this.latest;
    this.latest = undefined;
    return latest;
  }

  close(): Promise<void> {
    return this.lines.close();
  }

  private onLine(line: string): void {
    const parsed = parseNmea(line);
    if (!parsed.ok) {
      this.ctx.malformed(parsed.reason);
      return;
    }
    const { talker, type, fields } = parsed.sentence;
    const address = `${talker}${type}`;
    let result: ReturnType<GpsEpochAssembler['add']> | undefined;
    if (type === 'GGA') {
      const gga = parseGga(fields);
      if (!gga) return this.ctx.malformed('GGA with too few fields');
      result = this.epochs.add(address, gga.timeMs, (epoch) => epoch.ggas.push({ talker, gga }));
    } else if (type === 'RMC') {
      const rmc = parseRmc(fields);
      if (!rmc) return this.ctx.malformed('RMC with too few fields');
      result = this.epochs.add(address, rmc.timeMs, (epoch) => {
        epoch.rmc = rmc;
      });
    } else if (type === 'ZDA') {
      const zda = parseZda(fields);
      if (!zda) return this.ctx.malformed('ZDA with too few fields');
      result = this.epochs.add(address, zda.timeMs, (epoch) => {
        epoch.zdaDate = zda.date;
      });
    }
    if (result === 'refused') this.ctx.malformed(`more than ${GPS_EPOCH_SENTENCES_MAX} sentences in one epoch`);
  }

  private onEpoch(epoch: GpsEpoch): void {
    if (epoch.ggas.length === 0 && epoch.rmc === undefined) return;
    this.latest = gpsReading(epoch, this.dates.dateOf(epoch));
  }
}

export const gpsDriver = defineDriver<GpsSettings, 'serial'>({
  compatible: 'nmea,gps',
  busKind: 'serial',
  sensor: 'gps',
  pollIntervalMsDefault: 10_000,
  settingsFields: ['lineBytesMax'],
  parseSettings(node: ConfigNode): GpsSettings {
    return {
      lineBytesMax: node
        .field('lineBytesMax')
        .integer({ min: 82, max: 4096, unit: 'bytes', default: SERIAL_LINE_BYTES_MAX }),
    };
  },
  claims: () => ['the port'],
  create: (ctx, opener) => new Gps(ctx, opener),
});
