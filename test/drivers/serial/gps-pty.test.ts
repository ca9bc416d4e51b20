import { SerialPort } from 'serialport';
import t, { type Test } from 'tap';
import { systemClock } from '../../../firmware/clock.js';
import type { SerialBusConfig } from '../../../firmware/config/types.js';
import type { BusProvider } from '../../../drivers/buses.js';
import { startDevices } from '../../../drivers/index.js';
import { SERIAL_LINE_BYTES_MAX } from '../../../drivers/serial/lines.js';
import { gpsDriver } from '../../../drivers/serial/gps.js';
import { serialportOpener } from '../../../drivers/serial/serialport.js';
import { boardWith, recordingSink } from '../../fixtures/boards.js';
import { recordingContext } from '../../fixtures/driver-context.js';
import { NMEA_FIXTURES } from '../../fixtures/nmea/generate.js';
import { PtyPair, waitFor } from '../../support/pty.js';

const sentences = (name: string): string[] => NMEA_FIXTURES[name]!.split('\n').filter((line) => line.startsWith('$'));

/** Opens the peer end of the pair (the "GPS") and returns a writer that resolves once bytes are sent. */
async function openPeer(t: Test, pty: PtyPair): Promise<(data: string | Buffer) => Promise<void>> {
  const peer = new SerialPort({ path: pty.peerPath, baudRate: 9600 });
  await new Promise<void>((resolve, reject) => peer.once('open', resolve).once('error', reject));
  peer.on('error', () => {});
  t.teardown(() => new Promise<void>((resolve) => (peer.isOpen ? peer.close(() => resolve()) : resolve())));
  return (data) =>
    new Promise<void>((resolve, reject) => {
      peer.write(data, (error) => (error ? reject(error) : peer.drain(() => resolve())));
    });
}

t.test('GPS over a real pty: split lines, bad checksums, garbage and over-long lines', async (t) => {
  const pty = new PtyPair(t.testdir({}));
  await pty.start();
  t.teardown(() => pty.stop());
  const ctx = recordingContext({ lineBytesMax: SERIAL_LINE_BYTES_MAX });
  const gps = gpsDriver.create(ctx, serialportOpener({ path: pty.devicePath, baudRate: 9600 }));
  await gps.init();
  t.teardown(() => gps.close());
  const send = await openPeer(t, pty);
  const [gga, rmc, nextGga, nextRmc] = sentences('south-east.nmea');

  // One sentence in three writes, the split falling inside the checksum; the next epoch's GGA ends the first.
  await send(gga!.slice(0, 10));
  await send(gga!.slice(10, -1));
  await send(`${gga!.slice(-1)}\r\n${rmc}\r\n${nextGga}\r\n`);
  t.match(
    await nextSample(gps),
    { fix: true, latitudeDeg: -37.787, longitudeDeg: 175.2793 },
    'a sentence split across writes decodes',
  );

  const badChecksum = `${rmc!.slice(0, -2)}${rmc!.slice(-2) === '00' ? '01' : '00'}`;
  await send(`${badChecksum}\r\n`);
  await send(Buffer.from([0x00, 0xff, 0x13, 0x37, 0x0d, 0x0a]));
  await send(`$GPGGA,${'9'.repeat(SERIAL_LINE_BYTES_MAX + 100)}*00\r\n`);
  await send(`${nextRmc}\r\n`);
  await waitFor('three malformed lines', () => ctx.malformedReasons.length >= 3);
  t.equal(ctx.malformedReasons[0], 'checksum mismatch');
  t.equal(ctx.malformedReasons[1], 'non-printable bytes');
  t.match(ctx.malformedReasons[2], /^line longer than 512 bytes/);
  t.equal(ctx.malformedReasons.length, 3, 'the tail of the over-long line is not counted again');
  t.same(ctx.faults, [], 'bad input never faults the device');
  t.match(await nextSample(gps), { fix: true, speedMps: 1 }, 'the line after an over-long one is read normally');
});

/** Polls the driver until a sentence has arrived through the pty; bounded so the test cannot hang. */
async function nextSample(gps: {
  sample?(): Promise<Record<string, unknown> | undefined>;
}): Promise<Record<string, unknown> | undefined> {
  const POLLS_MAX = 250;
  for (let poll = 0; poll < POLLS_MAX; poll++) {
    const sample = await gps.sample!();
    if (sample) return sample;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return undefined;
}

t.test('the port vanishing faults the device; it recovers when the port comes back', async (t) => {
  const pty = new PtyPair(t.testdir({}));
  await pty.start();
  t.teardown(() => pty.stop());
  const bus: SerialBusConfig = {
    id: 'serial0',
    kind: 'serial',
    provider: 'serialport',
    path: pty.devicePath,
    baudRate: 9600,
    replayFile: undefined,
    replayLineIntervalMs: 250,
  };
  const buses: BusProvider = {
    gpio: async () => {
      throw new Error('no gpio here');
    },
    i2c: async () => {
      throw new Error('no i2c here');
    },
    serial: (config) => serialportOpener(config),
    close: async () => {},
  };
  const sink = recordingSink();
  const manager = await startDevices(
    boardWith(
      [bus],
      [{ id: 'gps', compatible: 'nmea,gps', bus: 'serial0', pollIntervalMs: 100, settings: { lineBytesMax: 512 } }],
    ),
    sink.sink,
    { buses, clock: systemClock },
  );
  t.teardown(() => manager.close());
  const reported: Record<string, unknown>[] = [];
  manager.onReported((_, patch) => reported.push(patch));
  await waitFor('the gps to start', () => manager.status()[0]!.state === 'ok');
  let send = await openPeer(t, pty);
  const lines = sentences('mixed-talkers.nmea');
  // A whole epoch (GPGGA, GLGGA, GNRMC), then the next epoch's first sentence, which ends it.
  const twoEpochs = `${lines.slice(0, 4).join('\r\n')}\r\n`;
  await send(twoEpochs);
  await waitFor('a reading', () => sink.messages.length === 1);
  t.match(sink.readings()[0], { fix: true, latitudeDeg: 44.0582 });
  t.match(sink.messages[0]!.properties, { 'content-type': 'application/json', sensor: 'gps', compatible: 'nmea,gps' });

  await pty.stop();
  // serialport's poller usually sees the vanished pty's EIO at once; the presence check (1 s) is the backstop.
  await waitFor('the fault', () => manager.status()[0]!.state === 'faulted', 20_000);
  t.match(reported.at(-1), { state: 'faulted' }, 'the fault is a reported property');
  t.ok(manager.status()[0]!.counters.busErrors >= 1);

  await pty.start();
  await waitFor('recovery after the backoff', () => manager.status()[0]!.state === 'ok', 10_000);
  t.same(reported.at(-1), { state: 'ok', fault: null }, 'recovery clears the fault');
  send = await openPeer(t, pty);
  await send(twoEpochs);
  await waitFor('a full fix after recovery', () => sink.readings().some((reading) => reading['speedMps'] === 0.257));
  t.match(sink.readings().at(-1), { fix: true, latitudeDeg: 44.0582, speedMps: 0.257 });
});
