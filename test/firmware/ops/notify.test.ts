import t from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { bundleForChild } from '../../support/bundle.js';
import { until } from '../../support/hub-fixture.js';
import { notifySocket } from '../../support/notify-socket.js';
import { tempDir } from '../../support/tmp.js';

/** A notification that cannot be sent is a missed notification, never a crash (issue 17, item 2). */

/** Descriptors the child runs with: enough for Node to start, few enough to take them all at once. */
const CHILD_FDS_MAX = 64;

t.test(
  'out of file descriptors, a notification is missed and reported; the process lives and the next one is sent',
  async (t) => {
    const notify = notifySocket(t);
    await notify.ready;
    const script = await bundleForChild(
      fileURLToPath(new URL('../../support/notify-emfile-child.ts', import.meta.url)),
      tempDir(t),
    );
    const proc = spawn('prlimit', [`--nofile=${CHILD_FDS_MAX}`, process.execPath, script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NOTIFY_SOCKET: notify.path },
    });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const [code] = (await once(proc, 'exit')) as [number];
    t.equal(code, 0, `the process did not crash${err ? `: ${err}` : ''}`);
    const result = JSON.parse(out) as { held: number; whileExhausted: number; errors: string[] };
    t.ok(result.held > 0, `the child took the last ${result.held} descriptors`);
    t.equal(result.whileExhausted, 1, 'the notification sent without descriptors was reported missed');
    t.match(result.errors[0], /^systemd-notify WATCHDOG: not sent: .*EMFILE/, 'naming the message and the cause');
    t.equal(result.errors.length, 1, 'nothing else went wrong');
    const sent = () => notify.messages().some((m) => m.includes('STATUS=descriptors back'));
    await until('the second notification at the socket', sent, 10_000);
    t.ok(sent(), 'the next notification reached the socket');
  },
);
