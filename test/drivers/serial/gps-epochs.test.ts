import t from 'tap';
import { ManualClock } from '../../support/manual-clock.js';
import type { ReadingValues } from '../../../drivers/model.js';
import { FakeSerialOpener } from '../../../drivers/serial/fake.js';
import { GPS_EPOCH_SENTENCES_MAX } from '../../../drivers/serial/gps-epoch.js';
import { gpsDriver } from '../../../drivers/serial/gps.js';
import { nmeaSentence, parseNmea, parseRmc } from '../../../drivers/serial/nmea.js';
import { recordingContext } from '../../fixtures/driver-context.js';
import { gga, rmc, type FixSpec } from '../../fixtures/nmea/generate.js';

/** A GPS driver on a fake port; `feed` sends lines as a receiver would, `poll` is one sample() call. */
async function gpsOnFakePort(clock = new ManualClock()) {
  const opener = new FakeSerialOpener();
  const ctx = recordingContext({ lineBytesMax: 512 }, { clock });
  const gps = gpsDriver.create(ctx, opener);
  await gps.init();
  t.teardown(() => gps.close());
  return {
    ctx,
    feed: (...lines: string[]) => opener.current.inject(lines.map((line) => `${line}\r\n`).join('')),
    poll: () => gps.sample!() as Promise<ReadingValues | undefined>,
  };
}

/** Epoch k of a receiver that moves between epochs: position, altitude and satellites all differ. */
function epochFix(k: number, talker = 'GP'): FixSpec {
  return {
    talker,
    time: `12000${k}.00`,
    latDeg: 48.1 + k / 100,
    lonDeg: 11.5 + k / 100,
    quality: 1,
    satellites: 6 + k,
    hdop: 0.9,
    altitudeM: 500 + 10 * k,
  };
}

t.test('a poll between a GGA and its RMC gets the previous epoch whole, never a mix (issue 19, 9)', async (t) => {
  const { feed, poll } = await gpsOnFakePort();
  feed(gga(epochFix(0)), rmc(epochFix(0), '230394', { speedKn: 1 }));
  feed(gga(epochFix(1)), rmc(epochFix(1), '230394', { speedKn: 2 }));
  feed(gga(epochFix(2)));
  // Epoch 2's RMC is still on the wire: the reading is epoch 1, time, position, altitude and satellites alike.
  t.same(await poll(), {
    fix: true,
    quality: 'gps',
    latitudeDeg: 48.11,
    longitudeDeg: 11.51,
    altitudeM: 510,
    satellites: 7,
    hdop: 0.9,
    speedMps: 1.029,
    courseDeg: null,
    utc: '1994-03-23T12:00:01.000Z',
    utcTime: '12:00:01.000',
    navStatus: null,
  });
  t.equal(await poll(), undefined, 'a half-received epoch is not a reading');
  feed(rmc(epochFix(2), '230394', { speedKn: 3 }));
  const whole = { utc: '1994-03-23T12:00:02.000Z', latitudeDeg: 48.12, altitudeM: 520, satellites: 8, speedMps: 1.543 };
  t.match(
    await poll(),
    whole,
    'once the epoch holds every sentence the receiver sends, it is reported without waiting for the next',
  );
});

t.test('an RMC-first receiver (u-blox order) is assembled the same way', async (t) => {
  const { feed, poll } = await gpsOnFakePort();
  const ubloxEpoch = (k: number) => [
    rmc(epochFix(k, 'GN'), '110720', { mode: 'D', navStatus: 'S' }),
    gga(epochFix(k, 'GN')),
  ];
  for (let k = 0; k < 3; k++) feed(...ubloxEpoch(k));
  feed(rmc(epochFix(3, 'GN'), '110720', { mode: 'D', navStatus: 'S' }));
  t.match(await poll(), { utc: '2020-07-11T12:00:02.000Z', latitudeDeg: 48.12, altitudeM: 520, navStatus: 'S' });
});

t.test('RMC-only receivers get positions; GGA-only epochs get the date carried across midnight (10)', async (t) => {
  const rmcOnly = await gpsOnFakePort();
  for (let k = 0; k < 3; k++) rmcOnly.feed(rmc(epochFix(k), '311299', { speedKn: 1, courseDeg: 45, mode: 'D' }));
  t.same(
    await rmcOnly.poll(),
    {
      fix: true,
      quality: 'dgps',
      latitudeDeg: 48.12,
      longitudeDeg: 11.52,
      altitudeM: null,
      satellites: null,
      hdop: null,
      speedMps: 0.514,
      courseDeg: 45,
      utc: '1999-12-31T12:00:02.000Z',
      utcTime: '12:00:02.000',
      navStatus: null,
    },
    'status A with a position is a fix',
  );

  const clock = new ManualClock();
  const ggaOnly = await gpsOnFakePort(clock);
  const late = { ...epochFix(0), time: '235959.00' };
  ggaOnly.feed(gga(late), rmc(late, '311299'));
  ggaOnly.feed(gga({ ...epochFix(0), time: '000000.00' }), gga({ ...epochFix(0), time: '000001.00' }));
  t.match(
    await ggaOnly.poll(),
    { fix: true, utc: '2000-01-01T00:00:00.000Z', utcTime: '00:00:00.000' },
    'the last RMC date moves on at midnight',
  );
  clock.advance(2 * 3_600_000);
  ggaOnly.feed(gga({ ...epochFix(0), time: '020000.00' }), gga({ ...epochFix(0), time: '020001.00' }));
  t.match(
    await ggaOnly.poll(),
    { fix: true, utc: null, utcTime: '02:00:01.000' },
    'after two hours without a date the day is not guessed, the time of day is still given',
  );
  ggaOnly.feed(nmeaSentence('GPZDA,020002.00,01,01,2000,00,00'), gga({ ...epochFix(0), time: '020002.00' }));
  ggaOnly.feed(gga({ ...epochFix(0), time: '020003.00' }));
  t.match(await ggaOnly.poll(), { utc: '2000-01-01T02:00:02.000Z' }, 'a ZDA in the epoch dates it');
});

t.test('satellites: the GN count, or the sum of per-constellation GGAs (11)', async (t) => {
  const sirf = await gpsOnFakePort();
  for (let k = 0; k < 2; k++) {
    sirf.feed(
      gga({ ...epochFix(k), satellites: 8 }),
      gga({ ...epochFix(k), talker: 'GL', satellites: 3 }),
      rmc({ ...epochFix(k), talker: 'GN' }, '040219'),
    );
  }
  t.match(await sirf.poll(), { satellites: 11, latitudeDeg: 48.11 }, 'GPGGA 8 + GLGGA 3, as SiRFstarV reports them');
  sirf.feed(gga({ ...epochFix(2), satellites: 2 }), gga({ ...epochFix(2), talker: 'GL', satellites: 9 }));
  sirf.feed(rmc({ ...epochFix(2), talker: 'GN' }, '040219'));
  t.match(await sirf.poll(), { satellites: 11 }, 'the order of the talkers does not matter');

  const combined = await gpsOnFakePort();
  for (let k = 0; k < 3; k++) {
    combined.feed(gga({ ...epochFix(k), satellites: 9 }), gga({ ...epochFix(k), talker: 'GN', satellites: 14 }));
  }
  t.match(await combined.poll(), { satellites: 14 }, 'a GN GGA already counts every constellation');
});

t.test('sentences longer than NMEA 0183 allows are counted and refused (12)', async (t) => {
  // 80 characters + CR LF is NMEA's 82; one more is too long, checksum or not.
  const body = (chars: number) => `GPTXT,${'A'.repeat(chars - 10)}`;
  const longest = nmeaSentence(body(80));
  const tooLong = nmeaSentence(body(81));
  t.equal(longest.length, 80);
  t.match(parseNmea(longest), { ok: true });
  t.same(parseNmea(tooLong), { ok: false, reason: "longer than NMEA 0183's 82 characters" });
  const { ctx, feed } = await gpsOnFakePort();
  feed(tooLong, longest);
  t.same(ctx.malformedReasons, ["longer than NMEA 0183's 82 characters"]);
});

t.test('a stream of GGAs under ever new talkers in one epoch is refused beyond the limit', async (t) => {
  const { ctx, feed } = await gpsOnFakePort();
  const talkers = Array.from({ length: GPS_EPOCH_SENTENCES_MAX + 4 }, (_, i) => `X${i.toString(36).toUpperCase()}`);
  feed(...talkers.map((talker) => gga({ ...epochFix(0), talker })));
  t.equal(ctx.malformedReasons.length, 4);
  t.match(ctx.malformedReasons[0], /^more than 16 sentences in one epoch$/);
});

t.test('NMEA 4.11 nav status V (none given) is not shown against a valid fix (13)', async (t) => {
  const parsed = parseNmea(rmc(epochFix(0, 'GN'), '110720', { mode: 'D', navStatus: 'V' }));
  t.match(parseRmc(parsed.ok ? parsed.sentence.fields : []), { valid: true, mode: 'D', navStatus: null });
  for (const status of ['S', 'C', 'U']) {
    const sentence = parseNmea(rmc(epochFix(0, 'GN'), '110720', { mode: 'D', navStatus: status }));
    t.equal(parseRmc(sentence.ok ? sentence.sentence.fields : [])!.navStatus, status);
  }
  const { feed, poll } = await gpsOnFakePort();
  const noStatus = (k: number) => rmc(epochFix(k, 'GN'), '110720', { mode: 'D', navStatus: 'V' });
  for (let k = 0; k < 2; k++) feed(noStatus(k), gga(epochFix(k, 'GN')));
  t.match(await poll(), { fix: true, navStatus: null });
});
