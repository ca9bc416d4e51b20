import { acquireLock } from '../../firmware/store/lock.js';

/** A child process that takes the data directory lock, says so, and holds it until killed. */
await acquireLock(process.argv[2]!);
process.stdout.write('locked\n');
setInterval(() => {}, 60_000);
