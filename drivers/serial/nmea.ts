/**
 * NMEA 0183 sentence parsing (NMEA 0183 v4.11): `$` + address (talker + type) + `,`-separated fields +
 * `*hh` checksum, the XOR of every character between `$` and `*`.
 */
export interface NmeaSentence {
  /** "GP", "GN", "GL", ...; "P" for proprietary sentences ($PGRME). */
  talker: string;
  /** "GGA", "RMC", ...; for proprietary sentences the manufacturer code and type ("GRME"). */
  type: string;
  fields: string[];
}

export type NmeaParseResult = { ok: true; sentence: NmeaSentence } | { ok: false; reason: string };

/** The checksum of the characters between `$` and `*`, as two upper-case hex digits. */
export function nmeaChecksum(body: string): string {
  let sum = 0;
  for (let i = 0; i < body.length; i++) sum ^= body.charCodeAt(i);
  return sum.toString(16).toUpperCase().padStart(2, '0');
}

/** Builds a sentence with its checksum from the part between `$` and `*`. */
export function nmeaSentence(body: string): string {
  return `$${body}*${nmeaChecksum(body)}`;
}

export function parseNmea(line: string): NmeaParseResult {
  if (!/^[\x20-\x7e]+$/.test(line)) return { ok: false, reason: 'non-printable bytes' };
  const match = /^\$([A-Z0-9]+),?([\x20-\x7e]*)\*([0-9A-Fa-f]{2})$/.exec(line);
  if (!match) return { ok: false, reason: 'not a $...*hh sentence' };
  const body = line.slice(1, line.lastIndexOf('*'));
  if (nmeaChecksum(body) !== match[3]!.toUpperCase()) return { ok: false, reason: 'checksum mismatch' };
  const address = match[1]!;
  const proprietary = address.startsWith('P');
  return {
    ok: true,
    sentence: {
      talker: proprietary ? 'P' : address.slice(0, 2),
      type: proprietary ? address.slice(1) : address.slice(2),
      fields: body.split(',').slice(1),
    },
  };
}

/** ddmm.mmmm / dddmm.mmmm with hemisphere to signed decimal degrees; null for the empty fields of no fix. */
export function nmeaCoordinate(value: string, hemisphere: string): number | null {
  const match = /^(\d{2,3})(\d{2}(?:\.\d+)?)$/.exec(value);
  if (!match || !/^[NSEW]$/.test(hemisphere)) return null;
  const degrees = Number(match[1]) + Number(match[2]) / 60;
  return hemisphere === 'S' || hemisphere === 'W' ? -degrees : degrees;
}

export function nmeaNumber(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : null;
}

/** GGA fix quality (field 6), NMEA 0183 v4.11 Table "GGA". */
export const GGA_QUALITY: Record<string, string> = {
  '0': 'none', '1': 'gps', '2': 'dgps', '3': 'pps', '4': 'rtk', '5': 'float-rtk', '6': 'estimated', '7': 'manual', '8': 'simulation',
};

export interface GgaFix {
  utcTime: string;
  latitudeDeg: number | null;
  longitudeDeg: number | null;
  quality: string;
  satellites: number | null;
  hdop: number | null;
  altitudeM: number | null;
}

export function parseGga(fields: string[]): GgaFix | undefined {
  if (fields.length < 14) return undefined;
  return {
    utcTime: fields[0]!,
    latitudeDeg: nmeaCoordinate(fields[1]!, fields[2]!),
    longitudeDeg: nmeaCoordinate(fields[3]!, fields[4]!),
    quality: GGA_QUALITY[fields[5]!] ?? 'unknown',
    satellites: nmeaNumber(fields[6]),
    hdop: nmeaNumber(fields[7]),
    altitudeM: nmeaNumber(fields[8]),
  };
}

export interface RmcFix {
  /** ISO 8601 UTC from the time and date fields, or null without them. */
  utc: string | null;
  /** Status A = valid, V = warning (no fix). */
  valid: boolean;
  latitudeDeg: number | null;
  longitudeDeg: number | null;
  speedMps: number | null;
  courseDeg: number | null;
  /** NMEA 4.1+ navigational status (field 13: S safe, C caution, U unsafe, V not valid); null before 4.1. */
  navStatus: string | null;
}

/** One knot is 1852 m per hour. */
const KNOT_MPS = 1852 / 3600;

export function parseRmc(fields: string[]): RmcFix | undefined {
  if (fields.length < 11) return undefined;
  const time = /^(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$/.exec(fields[0]!);
  const date = /^(\d{2})(\d{2})(\d{2})$/.exec(fields[8]!);
  let utc: string | null = null;
  if (time && date) {
    // RMC carries a two-digit year. GPS time starts in 1980, so 80-99 are 19yy and the rest 20yy.
    const century = Number(date[3]) >= 80 ? '19' : '20';
    const seconds = Number(time[3]).toFixed(3).padStart(6, '0');
    utc = `${century}${date[3]}-${date[2]}-${date[1]}T${time[1]}:${time[2]}:${seconds}Z`;
  }
  const knots = nmeaNumber(fields[6]);
  return {
    utc,
    valid: fields[1] === 'A',
    latitudeDeg: nmeaCoordinate(fields[2]!, fields[3]!),
    longitudeDeg: nmeaCoordinate(fields[4]!, fields[5]!),
    speedMps: knots === null ? null : Math.round(knots * KNOT_MPS * 1000) / 1000,
    courseDeg: nmeaNumber(fields[7]),
    navStatus: fields[12] !== undefined && fields[12] !== '' ? fields[12] : null,
  };
}
