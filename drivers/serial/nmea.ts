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

/**
 * NMEA 0183's sentence length limit: at most 82 characters counting the `$` and the closing CR LF, so at most
 * 79 between them. A longer line is not NMEA (a garbled merge of two sentences, another protocol) and is refused.
 */
export const NMEA_SENTENCE_CHARS_MAX = 82;
/** The CR LF that ends every sentence on the wire; line splitting removes it before parsing. */
const NMEA_LINE_END_CHARS = 2;

export function parseNmea(line: string): NmeaParseResult {
  if (line.length + NMEA_LINE_END_CHARS > NMEA_SENTENCE_CHARS_MAX) {
    return { ok: false, reason: `longer than NMEA 0183's ${NMEA_SENTENCE_CHARS_MAX} characters` };
  }
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

const MS_PER_DAY = 86_400_000;

/** hhmmss or hhmmss.sss (UTC) to milliseconds since midnight; null when empty or not a time of day. */
export function nmeaTimeOfDayMs(value: string | undefined): number | null {
  const match = /^(\d{2})(\d{2})(\d{2}(?:\.\d+)?)$/.exec(value ?? '');
  if (!match) return null;
  const ms = (Number(match[1]) * 3600 + Number(match[2]) * 60) * 1000 + Math.round(Number(match[3]) * 1000);
  return Number(match[1]) < 24 && Number(match[2]) < 60 && Number(match[3]) < 61 ? ms : null;
}

/** A UTC date (YYYY-MM-DD) and a time of day as ISO 8601, e.g. 2020-07-11T22:37:45.000Z. */
export function nmeaIsoUtc(date: string, timeOfDayMs: number): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + timeOfDayMs).toISOString();
}

/** The UTC date after `date` (YYYY-MM-DD). */
export function nmeaNextDate(date: string): string {
  return new Date(Date.parse(`${date}T00:00:00Z`) + MS_PER_DAY).toISOString().slice(0, 10);
}

export function nmeaNumber(value: string | undefined): number | null {
  if (value === undefined || value === '') return null;
  const parsed = Number(value);
  return Number.isFinite(parsed) ? parsed : null;
}

/** GGA fix quality (field 6), NMEA 0183 v4.11 Table "GGA". */
export const GGA_QUALITY: Record<string, string> = {
  '0': 'none',
  '1': 'gps',
  '2': 'dgps',
  '3': 'pps',
  '4': 'rtk',
  '5': 'float-rtk',
  '6': 'estimated',
  '7': 'manual',
  '8': 'simulation',
};

export interface GgaFix {
  utcTime: string;
  /** utcTime as milliseconds since midnight UTC; null when the receiver left it empty. */
  timeMs: number | null;
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
    timeMs: nmeaTimeOfDayMs(fields[0]),
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
  /** Milliseconds since midnight UTC; null when the time field is empty. */
  timeMs: number | null;
  /** YYYY-MM-DD from the date field; null when it is empty. */
  date: string | null;
  /** Status A = valid, V = warning (no fix). */
  valid: boolean;
  latitudeDeg: number | null;
  longitudeDeg: number | null;
  speedMps: number | null;
  courseDeg: number | null;
  /** NMEA 2.3+ mode indicator (field 12: A autonomous, D differential, E estimated, N no fix...); null before. */
  mode: string | null;
  /**
   * NMEA 4.1+ navigational status (field 13): S safe, C caution, U unsafe. Its fourth value, V, means "the
   * equipment gives no navigational status" (u-blox sends it beside valid fixes), not an invalid fix, so it
   * is reported as null, like a receiver older than 4.1 that has no such field.
   */
  navStatus: string | null;
}

/** One knot is 1852 m per hour. */
const KNOT_MPS = 1852 / 3600;

/** ddmmyy to YYYY-MM-DD. RMC carries a two-digit year; GPS time starts in 1980, so 80-99 are 19yy, others 20yy. */
function rmcDate(value: string): string | null {
  const date = /^(\d{2})(\d{2})(\d{2})$/.exec(value);
  if (!date) return null;
  const century = Number(date[3]) >= 80 ? '19' : '20';
  return `${century}${date[3]}-${date[2]}-${date[1]}`;
}

export function parseRmc(fields: string[]): RmcFix | undefined {
  if (fields.length < 11) return undefined;
  const timeMs = nmeaTimeOfDayMs(fields[0]);
  const date = rmcDate(fields[8]!);
  const knots = nmeaNumber(fields[6]);
  const navStatus = fields[12] ?? '';
  return {
    utc: timeMs !== null && date !== null ? nmeaIsoUtc(date, timeMs) : null,
    timeMs,
    date,
    valid: fields[1] === 'A',
    latitudeDeg: nmeaCoordinate(fields[2]!, fields[3]!),
    longitudeDeg: nmeaCoordinate(fields[4]!, fields[5]!),
    speedMps: knots === null ? null : Math.round(knots * KNOT_MPS * 1000) / 1000,
    courseDeg: nmeaNumber(fields[7]),
    mode: fields[11] !== undefined && fields[11] !== '' ? fields[11] : null,
    navStatus: /^[SCU]$/.test(navStatus) ? navStatus : null,
  };
}

export interface ZdaTime {
  timeMs: number | null;
  /** YYYY-MM-DD from ZDA's day, month and four-digit year fields; null when any is empty. */
  date: string | null;
}

/** ZDA (time and date): hhmmss.ss, day, month, year, local zone hours and minutes. */
export function parseZda(fields: string[]): ZdaTime | undefined {
  if (fields.length < 4) return undefined;
  const [day, month, year] = [fields[1]!, fields[2]!, fields[3]!];
  const valid = /^\d{2}$/.test(day) && /^\d{2}$/.test(month) && /^\d{4}$/.test(year);
  return { timeMs: nmeaTimeOfDayMs(fields[0]), date: valid ? `${year}-${month}-${day}` : null };
}
