import { readFileSync, writeFileSync } from 'node:fs';
import t from 'tap';
import { NMEA_FIXTURES, SIM_REPLAY_FIXTURE } from '../../fixtures/nmea/generate.js';

const FIXTURE_DIR = new URL('../../fixtures/nmea/', import.meta.url);
const SIM_REPLAY = new URL('../../../boards/sim-data/gps-track.nmea', import.meta.url);

// OUTPOST_WRITE_FIXTURES=1 rewrites the files from the generator instead of checking them.
if (process.env['OUTPOST_WRITE_FIXTURES'] === '1') {
  for (const [name, text] of Object.entries(NMEA_FIXTURES)) writeFileSync(new URL(name, FIXTURE_DIR), text);
  writeFileSync(SIM_REPLAY, NMEA_FIXTURES[SIM_REPLAY_FIXTURE]!);
}

t.test('committed fixtures are exactly what the generator produces', async (t) => {
  for (const [name, text] of Object.entries(NMEA_FIXTURES)) {
    t.equal(readFileSync(new URL(name, FIXTURE_DIR), 'utf8'), text, name);
  }
  t.equal(
    readFileSync(SIM_REPLAY, 'utf8'),
    NMEA_FIXTURES[SIM_REPLAY_FIXTURE],
    'the sim board replays the mixed-talker track',
  );
});

t.test('fixtures say they are synthetic and every sentence has a correct checksum', async (t) => {
  for (const [name, text] of Object.entries(NMEA_FIXTURES)) {
    const lines = text.trimEnd().split('\n');
    t.match(lines[0], /^# SYNTHETIC fixture/, `${name} header`);
    for (const line of lines.filter((l) => l.startsWith('$'))) {
      const [body, sum] = line.slice(1).split('*');
      let xor = 0;
      for (const char of body!) xor ^= char.charCodeAt(0);
      t.equal(sum, xor.toString(16).toUpperCase().padStart(2, '0'), `${name}: ${line.slice(0, 12)}`);
    }
  }
});

t.test('fixtures cover the traits the README describes', async (t) => {
  const all = Object.values(NMEA_FIXTURES).join('');
  for (const talker of ['$GPGGA', '$GNGGA', '$GLGGA', '$GPRMC', '$GNRMC', '$PGRME', '$PGRMT', '$PGRMV'])
    t.ok(all.includes(talker), talker);
  t.match(NMEA_FIXTURES['no-fix-start.nmea'], /\$GPGGA,[0-9.]+,,,,,0,/, 'no-fix GGA has empty position fields');
  t.match(NMEA_FIXTURES['no-fix-start.nmea'], /\$GPRMC,[0-9.]+,V,/, 'no-fix RMC has status V');
  t.match(NMEA_FIXTURES['south-east.nmea'], /,S,\d{5}\.\d+,E,/, 'southern and eastern hemispheres');
  t.match(NMEA_FIXTURES['gn-nmea411-dgps.nmea'], /\$GNGGA,([^,]*,){5}2,/, 'DGPS quality 2');
  t.match(NMEA_FIXTURES['gn-nmea411-dgps.nmea'], /\$GNRMC,([^,]*,){11}D,S\*/, 'NMEA 4.11 RMC: mode D and nav status S');
});
