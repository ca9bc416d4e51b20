/**
 * Child process for the notify test, run with a small RLIMIT_NOFILE: takes every free file descriptor, sends
 * a notification (spawning systemd-notify fails with EMFILE), gives the descriptors back and sends another.
 * Prints one JSON line: the errors the notifier reported. An exception would end it with a non-zero exit.
 */
import { closeSync, openSync } from 'node:fs';
import { systemdNotifier } from '../../firmware/ops/notify.js';

const errors: string[] = [];
const notifier = systemdNotifier((err) => errors.push(err.message))!;
const held: number[] = [];
for (;;) {
  try {
    held.push(openSync('/dev/null', 'r'));
  } catch {
    break;
  }
}
notifier.send({ WATCHDOG: '1' });
await notifier.flush();
const whileExhausted = errors.length;
for (const fd of held) closeSync(fd);
notifier.send({ STATUS: 'descriptors back' });
await notifier.flush();
process.stdout.write(`${JSON.stringify({ held: held.length, whileExhausted, errors })}\n`);
