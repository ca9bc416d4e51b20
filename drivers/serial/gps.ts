import type { ConfigNode } from '../../firmware/config/node.js';
import { defineDriver, type DriverContext, type DriverInstance, type ReadingValues } from '../model.js';
import { SerialLines } from './line-device.js';
import { SERIAL_LINE_BYTES_MAX } from './lines.js';
import { parseGga, parseNmea, parseRmc, type GgaFix, type RmcFix } from './nmea.js';
import type { SerialOpener } from './port.js';

export interface GpsSettings {
  /** Longest line kept, in bytes. Default SERIAL_LINE_BYTES_MAX. */
  lineBytesMax: number;
}

/**
 * An NMEA 0183 GPS receiver. GGA (position, quality, satellites, altitude) and RMC (validity, date, speed,
 * course) are merged from any talker (GP, GN, GL...); every other sentence, proprietary ones included, is
 * ignored; a line that is not a sentence or fails its checksum is counted as malformed. Each poll reports
 * the latest fix once, so a 1 Hz receiver does not fill the log at 1 Hz.
 */
class Gps implements DriverInstance {
  private readonly lines: SerialLines;
  private gga: GgaFix | undefined;
  private rmc: RmcFix | undefined;
  private fresh = false;

  constructor(private readonly ctx: DriverContext<GpsSettings>, opener: SerialOpener) {
    this.lines = new SerialLines(ctx as DriverContext<unknown>, opener, ctx.settings.lineBytesMax, (line) => this.onLine(line));
  }

  init(): Promise<void> {
    return this.lines.open();
  }

  async sample(): Promise<ReadingValues | undefined> {
    if (!this.fresh) return undefined;
    this.fresh = false;
    const gga = this.gga;
    const rmc = this.rmc;
    const fix = (rmc?.valid ?? true) && gga !== undefined && gga.quality !== 'none' && gga.latitudeDeg !== null;
    return {
      fix,
      quality: gga?.quality ?? 'none',
      latitudeDeg: fix ? round(gga!.latitudeDeg!, 7) : null,
      longitudeDeg: fix ? round(gga!.longitudeDeg!, 7) : null,
      altitudeM: fix ? gga!.altitudeM : null,
      satellites: gga?.satellites ?? null,
      hdop: gga?.hdop ?? null,
      speedMps: fix ? rmc?.speedMps ?? null : null,
      courseDeg: fix ? rmc?.courseDeg ?? null : null,
      utc: rmc?.utc ?? null,
      navStatus: rmc?.navStatus ?? null,
    };
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
    const { type, fields } = parsed.sentence;
    if (type === 'GGA') {
      const gga = parseGga(fields);
      if (!gga) return this.ctx.malformed('GGA with too few fields');
      this.gga = gga;
      this.fresh = true;
    } else if (type === 'RMC') {
      const rmc = parseRmc(fields);
      if (!rmc) return this.ctx.malformed('RMC with too few fields');
      this.rmc = rmc;
      this.fresh = true;
    }
  }
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}

export const gpsDriver = defineDriver<GpsSettings, 'serial'>({
  compatible: 'nmea,gps',
  busKind: 'serial',
  sensor: 'gps',
  pollIntervalMsDefault: 10_000,
  settingsFields: ['lineBytesMax'],
  parseSettings(node: ConfigNode): GpsSettings {
    return {
      lineBytesMax: node.field('lineBytesMax').integer({ min: 82, max: 4096, unit: 'bytes', default: SERIAL_LINE_BYTES_MAX }),
    };
  },
  claims: () => ['the port'],
  create: (ctx, opener) => new Gps(ctx, opener),
});
