import type { Clock } from '../../firmware/clock.js';
import type { ReadingValues } from '../model.js';
import type { GpsEpoch } from './gps-epoch.js';
import { nmeaIsoUtc, nmeaNextDate, type GgaFix, type RmcFix } from './nmea.js';

/**
 * How long a date learnt from RMC or ZDA is carried to epochs without one (a GGA-only epoch, or a receiver
 * that sends its date now and then). Within an hour a time of day that goes backwards can only be midnight,
 * so the carried date is moved on by one day; after longer silence the day is unknown and utc is null.
 */
const GPS_DATE_CARRY_MS_MAX = 3_600_000;

/** Gives each epoch its UTC date: its own RMC's or ZDA's, else the last one seen, across midnight. */
export class GpsDateTracker {
  private last: { date: string; timeMs: number; monoMs: number } | undefined;

  constructor(private readonly clock: Clock) {}

  dateOf(epoch: GpsEpoch): string | null {
    if (epoch.timeMs === null) return null;
    const own = epoch.rmc?.date ?? epoch.zdaDate;
    const last = this.last;
    let date: string | null = own;
    if (date === null && last !== undefined && this.clock.monoMs() - last.monoMs <= GPS_DATE_CARRY_MS_MAX) {
      date = epoch.timeMs < last.timeMs ? nmeaNextDate(last.date) : last.date;
    }
    if (date !== null) this.last = { date, timeMs: epoch.timeMs, monoMs: this.clock.monoMs() };
    return date;
  }
}

/** RMC's mode indicator (NMEA 2.3+, field 12) in GGA's quality words, for receivers that send no GGA. */
const RMC_MODE_QUALITY: Record<string, string> = {
  A: 'gps',
  D: 'dgps',
  E: 'estimated',
  F: 'float-rtk',
  M: 'manual',
  N: 'none',
  P: 'pps',
  R: 'rtk',
  S: 'simulation',
};

/**
 * The GGA that speaks for the epoch: the combined GN one when the receiver sends it, else the one using the
 * most satellites (a per-constellation GGA such as SiRFstarV's GLGGA may use only two).
 */
function primaryGga(ggas: GpsEpoch['ggas']): GgaFix | undefined {
  const combined = ggas.find((entry) => entry.talker === 'GN');
  if (combined) return combined.gga;
  return ggas.reduce<GgaFix | undefined>(
    (best, { gga }) => (best === undefined || (gga.satellites ?? 0) > (best.satellites ?? 0) ? gga : best),
    undefined,
  );
}

/**
 * Satellites used in the fix. A GN GGA counts every constellation, so its count is the answer. Without one,
 * a receiver that sends a GGA per constellation (SiRFstarV: GPGGA then GLGGA) counts each constellation's
 * satellites in its own sentence, and the fix uses their sum (its GNGSA sentences list the same total).
 */
function satellitesUsed(ggas: GpsEpoch['ggas']): number | null {
  const combined = ggas.find((entry) => entry.talker === 'GN');
  if (combined) return combined.gga.satellites;
  const counts = ggas.map(({ gga }) => gga.satellites).filter((count): count is number => count !== null);
  return counts.length === 0 ? null : counts.reduce((sum, count) => sum + count, 0);
}

function rmcQuality(rmc: RmcFix): string {
  if (rmc.mode !== null) return RMC_MODE_QUALITY[rmc.mode] ?? 'unknown';
  // Before NMEA 2.3 RMC had no mode field: status A then stands for an autonomous fix.
  return rmc.valid ? 'gps' : 'none';
}

/**
 * One epoch as a reading. Position comes from the GGA when there is one (it has altitude and satellites too),
 * else from the RMC, so receivers configured for RMC only still give positions. With both, the fix needs both
 * to agree (GGA quality not 0 and RMC status A).
 */
export function gpsReading(epoch: GpsEpoch, date: string | null): ReadingValues {
  const gga = primaryGga(epoch.ggas);
  const rmc = epoch.rmc;
  const source = gga ?? rmc!;
  const hasPosition = source.latitudeDeg !== null && source.longitudeDeg !== null;
  const fix = hasPosition && (gga === undefined || gga.quality !== 'none') && (rmc === undefined || rmc.valid);
  return {
    fix,
    quality: gga?.quality ?? rmcQuality(rmc!),
    latitudeDeg: fix ? round(source.latitudeDeg!, 7) : null,
    longitudeDeg: fix ? round(source.longitudeDeg!, 7) : null,
    altitudeM: fix ? (gga?.altitudeM ?? null) : null,
    satellites: satellitesUsed(epoch.ggas),
    hdop: gga?.hdop ?? null,
    speedMps: fix ? (rmc?.speedMps ?? null) : null,
    courseDeg: fix ? (rmc?.courseDeg ?? null) : null,
    utc: epoch.timeMs !== null && date !== null ? nmeaIsoUtc(date, epoch.timeMs) : null,
    utcTime: epoch.timeMs !== null ? nmeaIsoUtc('1970-01-01', epoch.timeMs).slice(11, 23) : null,
    navStatus: rmc?.navStatus ?? null,
  };
}

function round(value: number, decimals: number): number {
  const factor = 10 ** decimals;
  return Math.round(value * factor) / factor;
}
