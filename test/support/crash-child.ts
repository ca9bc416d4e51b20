/**
 * Child process for the SIGKILL crash test: appends with durable acknowledgement as fast as it can and
 * prints `A <seq> <body id>` for every append that resolved and `K <seq>` for every ack it made.
 * The parent kills it at a random moment and checks the log against these lines.
 */
import { RingLog } from '../../firmware/store/log.js';

const [dir, cycle] = process.argv.slice(2);
/** Appends kept in flight at once, so group commits hold several records. */
const APPENDS_IN_FLIGHT_MAX = 64;

const log = await RingLog.open({
  dir: dir!,
  segmentBytes: 64 * 1024,
  quotaBytes: 64 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
  checkpointIntervalMs: 5,
});
const lane = await log.lane('upstream');
let n = 0;
let readFrom = lane.ackedSeq() + 1;
process.stdout.write('R\n');

async function producer(): Promise<never> {
  for (;;) {
    const id = `c${cycle}-${n++}`;
    const body = Buffer.from(`${id}:${'p'.repeat((n * 37) % 700)}`);
    const seq = await lane.append({ body });
    process.stdout.write(`A ${seq} ${id}\n`);
  }
}

async function consumer(): Promise<never> {
  for (;;) {
    const recs = await lane.read(readFrom, { recordsMax: 20 });
    if (recs.length > 0) {
      readFrom = recs[recs.length - 1]!.seq + 1;
      // Said before it is done: the checkpoint write runs on the thread pool and can land before a line
      // printed after ack() leaves this process, so a kill in between would show a cursor nobody reported.
      process.stdout.write(`K ${readFrom - 1}\n`);
      lane.ack(readFrom - 1);
    }
    await new Promise((r) => setTimeout(r, 3));
  }
}

for (let i = 0; i < APPENDS_IN_FLIGHT_MAX; i++) void producer();
void consumer();
