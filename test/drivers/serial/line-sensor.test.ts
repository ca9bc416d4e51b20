import { SerialPort } from 'serialport';
import t from 'tap';
import { lineSensorDriver, parseSensorLine } from '../../../drivers/serial/line-sensor.js';
import { BoundedLineSplitter } from '../../../drivers/serial/lines.js';
import { serialportOpener } from '../../../drivers/serial/serialport.js';
import { recordingContext } from '../../fixtures/driver-context.js';
import { PtyPair, waitFor } from '../../support/pty.js';

t.test('line parsing: JSON objects and key=value pairs, scalars only', async (t) => {
  t.same(parseSensorLine('{"tempC": 21.5, "door": "open", "ok": true}', 'json'), {
    tempC: 21.5,
    door: 'open',
    ok: true,
  });
  t.same(parseSensorLine('tempC=21.5 rh=40,state=idle', 'keyvalue'), { tempC: 21.5, rh: 40, state: 'idle' });
  t.equal(parseSensorLine('{"nested": {"a": 1}}', 'json'), 'field "nested" is not a scalar');
  t.equal(parseSensorLine('[1,2]', 'json'), 'not a JSON object');
  t.equal(parseSensorLine('{oops', 'json'), 'not JSON');
  t.equal(parseSensorLine('tempC 21.5', 'keyvalue'), '"tempC" is not name=value');
  t.equal(
    parseSensorLine(Array.from({ length: 33 }, (_, i) => `f${i}=1`).join(' '), 'keyvalue'),
    'more than 32 fields',
  );
});

t.test('the splitter bounds its buffer and skips the rest of an over-long line', async (t) => {
  const lines: string[] = [];
  const overlong: number[] = [];
  const splitter = new BoundedLineSplitter(
    (line) => lines.push(line),
    (bytes) => overlong.push(bytes),
    8,
  );
  splitter.push(Buffer.from('abc\r\n12345'));
  splitter.push(Buffer.from('6789xyz\nok\n'));
  splitter.push(Buffer.from('\r\n\n'));
  t.same(lines, ['abc', 'ok'], 'the over-long line and its tail are dropped; empty lines are skipped');
  t.same(overlong, [12]);
  t.throws(
    () =>
      new BoundedLineSplitter(
        () => {},
        () => {},
        0,
      ),
    { message: '"lineBytesMax" must be a positive integer, got 0' },
  );
});

t.test('line sensor over a real pty', async (t) => {
  const pty = new PtyPair(t.testdir({}));
  await pty.start();
  t.teardown(() => pty.stop());
  const ctx = recordingContext({ format: 'keyvalue' as const, lineBytesMax: 64 });
  const sensor = lineSensorDriver.create(ctx, serialportOpener({ path: pty.devicePath, baudRate: 115200 }));
  await sensor.init();
  t.teardown(() => sensor.close());
  const peer = new SerialPort({ path: pty.peerPath, baudRate: 115200 });
  await new Promise<void>((resolve, reject) => peer.once('open', resolve).once('error', reject));
  t.teardown(() => new Promise<void>((resolve) => peer.close(() => resolve())));
  const send = (data: string): Promise<void> =>
    new Promise((resolve) => peer.write(data, () => peer.drain(() => resolve())));
  await send('flowLpm=12.5 ');
  await send('pressureKPa=301\r\n');
  await send(`noise=${'x'.repeat(100)}\r\n`);
  await send('garbage\r\n');
  await send('flowLpm=0 pressureKPa=299\n');
  await waitFor(
    'two readings and two malformed lines',
    () => ctx.readings.length === 2 && ctx.malformedReasons.length === 2,
  );
  t.same(ctx.readings, [
    { flowLpm: 12.5, pressureKPa: 301 },
    { flowLpm: 0, pressureKPa: 299 },
  ]);
  t.match(ctx.malformedReasons, [/^line longer than 64 bytes/, '"garbage" is not name=value']);
});
