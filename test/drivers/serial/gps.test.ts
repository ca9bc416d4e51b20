import t from 'tap';
import { FakeSerialOpener } from '../../../drivers/serial/fake.js';
import { gpsDriver } from '../../../drivers/serial/gps.js';
import { nmeaChecksum, parseNmea, parseRmc } from '../../../drivers/serial/nmea.js';
import type { ReadingValues } from '../../../drivers/model.js';
import { NMEA_FIXTURES } from '../../fixtures/nmea/generate.js';
import { recordingContext } from '../../fixtures/driver-context.js';

t.test('checksums match the classic NMEA reference sentences', async (t) => {
  // The GGA and RMC examples every NMEA primer quotes (e.g. the NMEA FAQ by Dale DePriest).
  t.equal(nmeaChecksum('GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,'), '47');
  t.equal(nmeaChecksum('GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W'), '6A');
  t.match(parseNmea('$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*47'), {
    ok: true,
    sentence: { talker: 'GP', type: 'GGA' },
  });
  t.match(parseNmea('$GPGGA,123519,4807.038,N,01131.000,E,1,08,0.9,545.4,M,46.9,M,,*48'), {
    ok: false,
    reason: 'checksum mismatch',
  });
  t.match(parseNmea('$PGRME,2.3,M,3.1,M,3.9,M*' + nmeaChecksum('PGRME,2.3,M,3.1,M,3.9,M')), {
    ok: true,
    sentence: { talker: 'P', type: 'GRME' },
  });
  t.match(parseNmea('GPGGA,no dollar*00'), { ok: false });
  t.match(parseNmea('$GPGGA,\x01\x02*00'), { ok: false, reason: 'non-printable bytes' });
});

t.test('RMC decodes date, speed and the NMEA 4.11 nav status', async (t) => {
  const parsed = parseNmea('$GPRMC,123519,A,4807.038,N,01131.000,E,022.4,084.4,230394,003.1,W*6A');
  t.ok(parsed.ok);
  const rmc = parseRmc(parsed.ok ? parsed.sentence.fields : []);
  t.match(rmc, { utc: '1994-03-23T12:35:19.000Z', valid: true, speedMps: 11.524, courseDeg: 84.4, navStatus: null });
  t.equal(rmc!.latitudeDeg!.toFixed(5), '48.11730');
});

/** Feeds a fixture through a fake port line by line, polling after every line as an unlucky poll would. */
async function decode(name: string): Promise<{ samples: ReadingValues[]; malformed: string[] }> {
  const opener = new FakeSerialOpener();
  const ctx = recordingContext({ lineBytesMax: 512 });
  const gps = gpsDriver.create(ctx, opener);
  await gps.init();
  const samples: ReadingValues[] = [];
  for (const line of NMEA_FIXTURES[name]!.split('\n').filter((l) => l.startsWith('$'))) {
    opener.current.inject(`${line}\r\n`);
    const sample = await gps.sample!();
    if (sample) samples.push(sample);
  }
  await gps.close();
  return { samples, malformed: ctx.malformedReasons };
}

t.test('fixtures decode to the positions they were generated from', async (t) => {
  const m9n = await decode('gn-nmea411-dgps.nmea');
  t.same(m9n.malformed, [], 'VTG, GSV and GSA are ignored, not malformed');
  t.match(m9n.samples[0], {
    fix: true,
    quality: 'dgps',
    latitudeDeg: 38.1125,
    longitudeDeg: -122.5692,
    satellites: 12,
    hdop: 0.7,
    altitudeM: 12.3,
    navStatus: 'S',
    utc: '2020-07-11T16:00:00.000Z',
  });

  const south = await decode('south-east.nmea');
  t.match(south.samples.at(-1), {
    fix: true,
    latitudeDeg: -37.787,
    longitudeDeg: 175.2793,
    speedMps: 1.0,
    courseDeg: 90,
  });

  const garmin = await decode('garmin-proprietary.nmea');
  t.same(garmin.malformed, [], 'proprietary $PGRM* sentences are ignored');
  t.match(garmin.samples[0], { fix: true, quality: 'dgps', latitudeDeg: 37.3861 });

  const mixed = await decode('mixed-talkers.nmea');
  t.equal(mixed.samples.length, 4, 'one reading per epoch, however often it is polled');
  t.match(mixed.samples.at(-1), {
    fix: true,
    quality: 'gps',
    latitudeDeg: 44.0582,
    longitudeDeg: -121.3153,
    altitudeM: 1104.5,
  });
  t.ok(
    mixed.samples.every((sample) => sample['satellites'] === 9 + 6),
    'GPGGA and GLGGA satellites add up',
  );

  const start = await decode('no-fix-start.nmea');
  t.match(start.samples[0], { fix: false, quality: 'none', latitudeDeg: null, longitudeDeg: null, satellites: 0 });
  t.match(start.samples.at(-1), { fix: true, latitudeDeg: 49.1913, longitudeDeg: -122.849 });
});

t.test('a poll with nothing new reports nothing', async (t) => {
  const opener = new FakeSerialOpener();
  const gps = gpsDriver.create(recordingContext({ lineBytesMax: 512 }), opener);
  await gps.init();
  t.equal(await gps.sample!(), undefined, 'no sentence yet');
  const lines = NMEA_FIXTURES['south-east.nmea']!.split('\n').filter((line) => line.startsWith('$'));
  // The first epoch is known to be whole once the second begins.
  opener.current.inject(`${lines[0]}\r\n${lines[1]}\r\n${lines[2]}\r\n`);
  t.match(await gps.sample!(), { utc: '2014-12-31T01:00:00.000Z' });
  t.equal(await gps.sample!(), undefined, 'the same fix is not reported twice');
});
