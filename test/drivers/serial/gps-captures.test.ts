import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import type { ReadingValues } from '../../../drivers/model.js';
import { FakeSerialOpener } from '../../../drivers/serial/fake.js';
import { gpsDriver } from '../../../drivers/serial/gps.js';
import { recordingContext } from '../../fixtures/driver-context.js';

/**
 * The GPS driver against real receiver captures (gpsd's regression data, described in
 * <repo>/../shared/testdata/nmea/README.md). They are third-party data kept outside this repository and read
 * in place; without them this file skips and says why.
 */
const CAPTURE_DIR = fileURLToPath(new URL('../../../../shared/testdata/nmea/', import.meta.url));

interface Capture {
  file: string;
  /** Epochs (distinct GGA/RMC times) in the capture, as the README's sentence counts give them. */
  epochs: number;
  /** Epochs the driver can report: the LEA-4H capture stops before its last epoch's closing ZDA. */
  reported: number;
  /** The place the capture's header or README names, and how far from it the receiver may be. */
  area: { latDeg: number; lonDeg: number; km: number } | null;
}

const CAPTURES: Capture[] = [
  // "Novato, CA, USA": the town centre, and the town's size as the radius.
  { file: 'ublox-neo-m9n-nmea.log', epochs: 61, reported: 61, area: { latDeg: 38.1074, lonDeg: -122.5697, km: 10 } },
  { file: 'sirfstarv-nmea.log', epochs: 59, reported: 59, area: { latDeg: 44.06, lonDeg: -121.31, km: 10 } },
  { file: 'bu353s4.log', epochs: 25, reported: 25, area: { latDeg: -37.8, lonDeg: 175.3, km: 10 } },
  // The Garmin capture names no place.
  { file: 'garmin15x.log', epochs: 7, reported: 7, area: null },
  { file: 'ublox-lea-4h.log', epochs: 14, reported: 13, area: { latDeg: 49.126356, lonDeg: -122.710015, km: 2 } },
];

/** One epoch as read straight from the capture text, independently of the driver's parser. */
interface CaptureEpoch {
  time: string;
  ggas: { talker: string; fields: string[] }[];
  rmc: string[] | undefined;
  /** Satellites listed in the epoch's GSA sentences (the ones used in the fix). */
  gsaSatellites: number;
}

function captureEpochs(lines: string[]): CaptureEpoch[] {
  const epochs: CaptureEpoch[] = [];
  for (const line of lines) {
    const fields = line.slice(0, line.indexOf('*')).split(',');
    const type = fields[0]!.slice(3);
    // GSA carries no time; a receiver sends it inside the epoch it describes.
    const used = fields.slice(3, 15).filter((f) => f !== '').length;
    if (type === 'GSA' && epochs.length > 0) epochs.at(-1)!.gsaSatellites += used;
    if (type !== 'GGA' && type !== 'RMC') continue;
    if (epochs.at(-1)?.time !== fields[1]) {
      epochs.push({ time: fields[1]!, ggas: [], rmc: undefined, gsaSatellites: 0 });
    }
    if (type === 'GGA') epochs.at(-1)!.ggas.push({ talker: fields[0]!.slice(1, 3), fields });
    else epochs.at(-1)!.rmc = fields;
  }
  return epochs;
}

function degrees(value: string, hemisphere: string): number {
  const whole = Math.floor(Number(value) / 100);
  const sign = hemisphere === 'S' || hemisphere === 'W' ? -1 : 1;
  return sign * (whole + (Number(value) - whole * 100) / 60);
}

function distanceKm(aLat: number, aLon: number, bLat: number, bLon: number): number {
  const rad = Math.PI / 180;
  const x = (bLon - aLon) * rad * Math.cos(((aLat + bLat) / 2) * rad);
  return Math.hypot(x, (bLat - aLat) * rad) * 6371;
}

/** Replays a capture as the wire carries it (CR LF), polling after every line: every mid-epoch moment is hit. */
async function replay(lines: string[]): Promise<{ readings: ReadingValues[]; malformed: string[] }> {
  const opener = new FakeSerialOpener();
  const ctx = recordingContext({ lineBytesMax: 512 });
  const gps = gpsDriver.create(ctx, opener);
  await gps.init();
  const readings: ReadingValues[] = [];
  for (const line of lines) {
    opener.current.inject(`${line}\r\n`);
    const reading = await gps.sample!();
    if (reading) readings.push(reading);
  }
  await gps.close();
  return { readings, malformed: ctx.malformedReasons };
}

const missing = existsSync(CAPTURE_DIR)
  ? false
  : `the receiver captures are not at ${CAPTURE_DIR} (see the README there)`;

for (const capture of CAPTURES) {
  const title = `${capture.file}: one reading per epoch, each from its own epoch's sentences`;
  t.test(title, { skip: missing }, async (t) => {
    const text = readFileSync(`${CAPTURE_DIR}${capture.file}`, 'latin1');
    const lines = text.split('\n').filter((line) => line.startsWith('$'));
    const epochs = captureEpochs(lines);
    t.equal(epochs.length, capture.epochs, 'the capture holds the epochs its README counts');
    const { readings, malformed } = await replay(lines);
    t.same(malformed, [], 'every sentence of a real receiver is accepted');
    t.equal(readings.length, capture.reported, 'each epoch is reported once, however often it is polled');
    readings.forEach((reading, index) => checkReading(t, capture, epochs[index]!, reading, `epoch ${index}`));
  });
}

function checkReading(t: Test, capture: Capture, epoch: CaptureEpoch, reading: ReadingValues, label: string): void {
  const time = epoch.time;
  const seconds = Number(time.slice(4)).toFixed(3).padStart(6, '0');
  t.equal(reading['utcTime'], `${time.slice(0, 2)}:${time.slice(2, 4)}:${seconds}`, `${label}: the time of this epoch`);
  const rmc = epoch.rmc!;
  const date = `20${rmc[9]!.slice(4, 6)}-${rmc[9]!.slice(2, 4)}-${rmc[9]!.slice(0, 2)}`;
  t.equal(reading['utc'], `${date}T${reading['utcTime']}Z`, `${label}: utc is the epoch's RMC date and time`);
  const combined = epoch.ggas.find((gga) => gga.talker === 'GN');
  const gga = combined ?? epoch.ggas[0]!;
  const satellites = combined
    ? Number(combined.fields[7])
    : epoch.ggas.reduce((sum, g) => sum + Number(g.fields[7]), 0);
  t.equal(reading['satellites'], satellites, `${label}: satellites as the receiver counts them`);
  if (!combined && epoch.ggas.length > 1) {
    t.equal(reading['satellites'], epoch.gsaSatellites, `${label}: as many as its GSA sentences list`);
  }
  const fix = gga.fields[6] !== '0' && rmc[2] === 'A';
  t.equal(reading['fix'], fix, `${label}: fix as GGA quality and RMC status say`);
  t.equal(reading['quality'], ['none', 'gps', 'dgps'][Number(gga.fields[6])], `${label}: GGA's fix quality`);
  if (!fix) {
    t.match(reading, { latitudeDeg: null, longitudeDeg: null, altitudeM: null }, `${label}: no position without a fix`);
    return;
  }
  const latDeg = degrees(gga.fields[2]!, gga.fields[3]!);
  const lonDeg = degrees(gga.fields[4]!, gga.fields[5]!);
  t.ok(Math.abs((reading['latitudeDeg'] as number) - latDeg) < 1e-7, `${label}: latitude of this epoch's GGA`);
  t.ok(Math.abs((reading['longitudeDeg'] as number) - lonDeg) < 1e-7, `${label}: longitude of this epoch's GGA`);
  t.equal(reading['altitudeM'], Number(gga.fields[9]), `${label}: altitude of this epoch's GGA`);
  const speedMps = (Number(rmc[7]) * 1852) / 3600;
  t.ok(Math.abs((reading['speedMps'] as number) - speedMps) < 0.001, `${label}: speed of this epoch's RMC`);
  t.equal(reading['navStatus'], null, `${label}: no nav status claimed (the M9N's V means none given)`);
  if (capture.area) {
    const km = distanceKm(capture.area.latDeg, capture.area.lonDeg, latDeg, lonDeg);
    t.ok(km < capture.area.km, `${label}: ${km.toFixed(1)} km from the capture's stated place`);
  }
}
