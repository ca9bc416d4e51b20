import { symlinkSync, unlinkSync } from 'node:fs';
import { ReadlineParser } from '@serialport/parser-readline';
import { SerialPort } from 'serialport';
import t, { type Test } from 'tap';
import { FakeSerialStream } from '../../../drivers/serial/fake.js';
import type { SerialStream } from '../../../drivers/serial-port.js';
import { SERIAL_PRESENCE_CHECK_MS, serialportOpener } from '../../../drivers/serial/serialport.js';
import { PtyPair, waitFor } from '../../support/pty.js';

interface Harness {
  stream: SerialStream;
  /** The device side sends bytes. */
  send(data: string): Promise<void>;
  /** Lines the device side received. */
  received: string[];
  /** The device disappears. */
  vanish(): Promise<void>;
}

/** The SerialStream contract (drivers/serial/port.ts). */
function contract(name: string, open: (t: Test) => Promise<Harness>): void {
  t.test(`SerialStream contract: ${name}`, async (t) => {
    const h = await open(t);
    const chunks: Buffer[] = [];
    const closes: (Error | undefined)[] = [];
    h.stream.onData((chunk) => chunks.push(chunk));
    h.stream.onClose((error) => closes.push(error));
    await h.send('$GPGGA,first');
    await h.send(',second\r\n');
    await waitFor('both chunks', () => Buffer.concat(chunks).toString() === '$GPGGA,first,second\r\n');
    t.equal(
      Buffer.concat(chunks).toString(),
      '$GPGGA,first,second\r\n',
      'bytes arrive in order, whatever the chunking',
    );
    await h.stream.write(Buffer.from('PING\r\n'));
    await waitFor('the device to read PING', () => h.received.includes('PING'));
    t.same(h.received, ['PING'], 'write reaches the device');
    await h.vanish();
    await waitFor('close', () => closes.length > 0);
    t.equal(closes.length, 1, 'one close');
    t.type(closes[0], Error, 'a vanished device closes with an error');
  });

  t.test(`SerialStream contract: ${name}, closed by its owner`, async (t) => {
    const h = await open(t);
    const closes: (Error | undefined)[] = [];
    h.stream.onClose((error) => closes.push(error));
    await h.stream.close();
    await waitFor('close', () => closes.length > 0);
    t.same(closes, [undefined], 'closing on purpose is not an error');
  });
}

contract('FakeSerialStream', async () => {
  const stream = new FakeSerialStream();
  return {
    stream,
    async send(data) {
      stream.inject(data);
    },
    get received() {
      return stream.written.map((b) => b.toString().trim());
    },
    async vanish() {
      stream.vanish();
    },
  } as Harness;
});

contract('serialport on a socat pty pair', async (t) => {
  const pty = new PtyPair(t.testdir({}));
  await pty.start();
  t.teardown(() => pty.stop());
  const stream = await serialportOpener({ path: pty.devicePath, baudRate: 9600 }).open();
  t.teardown(() => stream.close());
  const peer = new SerialPort({ path: pty.peerPath, baudRate: 9600 });
  await new Promise<void>((resolve, reject) => peer.once('open', resolve).once('error', reject));
  t.teardown(() => new Promise<void>((resolve) => (peer.isOpen ? peer.close(() => resolve()) : resolve())));
  peer.on('error', () => {});
  const received: string[] = [];
  peer.pipe(new ReadlineParser({ delimiter: '\r\n' })).on('data', (line: string) => received.push(line));
  return {
    stream,
    send: (data) =>
      new Promise<void>((resolve, reject) =>
        peer.write(data, (error) => (error ? reject(error) : peer.drain(() => resolve()))),
      ),
    received,
    vanish: () => pty.stop(),
  };
});

t.test('a port whose device node goes away is closed and reported even while the tty still answers', async (t) => {
  // A /dev/serial/by-id style link to a live pty: removing the link is all that happens, no hangup, so
  // only the presence check (SERIAL_PRESENCE_CHECK_MS) can notice.
  const dir = t.testdir({});
  const pty = new PtyPair(dir);
  await pty.start();
  t.teardown(() => pty.stop());
  const link = `${dir}/by-id`;
  symlinkSync(pty.devicePath, link);
  const stream = await serialportOpener({ path: link, baudRate: 9600 }).open();
  t.teardown(() => stream.close());
  let closedWith: Error | undefined | null = null;
  stream.onClose((error) => (closedWith = error));
  unlinkSync(link);
  await waitFor('the close', () => closedWith !== null, SERIAL_PRESENCE_CHECK_MS * 10);
  t.match(closedWith, { message: `${link} is gone` }, 'reported once, naming the path');
});
