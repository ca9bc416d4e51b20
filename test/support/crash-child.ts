/**
 * Child process for the SIGKILL crash test: appends with durable acknowledgement as fast as it can and
 * reports `A <seq> <body id>` for every append that resolved and `K <seq>` for every ack it made, one
 * line each, into the report file. The parent kills it at a random moment and checks the log against
 * these lines. The report is written with writeSync to a regular file: once write(2) returns the line is
 * in the page cache, which a SIGKILL keeps (stdout is a pipe Node writes asynchronously: a kill lost lines).
 */
import { openSync, writeSync } from 'node:fs';
import { RingLog } from '../../firmware/store/log.js';

const [dir, cycle, reportPath] = process.argv.slice(2);
const report = openSync(reportPath!, 'a');
const say = (line: string) => writeSync(report, `${line}\n`);
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

async function producer(): Promise<never> {
  for (;;) {
    const id = `c${cycle}-${n++}`;
    const body = Buffer.from(`${id}:${'p'.repeat((n * 37) % 700)}`);
    const seq = await lane.append({ body });
    say(`A ${seq} ${id}`);
  }
}

async function consumer(): Promise<never> {
  for (;;) {
    const recs = await lane.read(readFrom, { recordsMax: 20 });
    if (recs.length > 0) {
      readFrom = recs[recs.length - 1]!.seq + 1;
      // Said before it is done: the checkpoint write runs on the thread pool and can land before a line
      // written after ack(), so a kill in between would show a cursor nobody reported.
      say(`K ${readFrom - 1}`);
      lane.ack(readFrom - 1);
    }
    await new Promise((r) => setTimeout(r, 3));
  }
}

for (let i = 0; i < APPENDS_IN_FLIGHT_MAX; i++) void producer();
void consumer();
