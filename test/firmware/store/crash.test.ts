import t from 'tap';
import { spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RingLog } from '../../../firmware/store/log.js';
import { bundleForChild } from '../../support/bundle.js';
import { prng, testSeed } from '../../support/prng.js';
import { walkLane } from '../../support/read-lane.js';
import { tempDir } from '../../support/tmp.js';

/**
 * SIGKILL crash test: a child appends with durable acknowledgement and reports every acknowledged seq;
 * the parent kills it at a random moment, reopens the log and checks that every acknowledged record is
 * present, intact and in order, and that nothing was invented. (The power-cut simulator covers what a
 * SIGKILL cannot: lost page cache.) The moment is a random count of acknowledged appends, not a time, so
 * a slow disk changes how long a cycle takes, never what it checks.
 */
const CYCLES = 50;
// A fixed number of durable appends: on a slow or shared disk the file may need more than tap's 120 s.
t.setTimeout(600_000);
/** Each cycle kills the child once it reported between these many acknowledged appends. */
const KILL_AFTER_APPENDS_MIN = 20;
const KILL_AFTER_APPENDS_MAX = 200;
/** A child that reports no progress for this long is stuck: the test fails rather than hang. */
const CHILD_STALL_MS_MAX = 60_000;
/** How often the parent looks at the report file while waiting for the kill moment. */
const REPORT_POLL_MS = 2;

const OPTS = {
  segmentBytes: 64 * 1024,
  quotaBytes: 64 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
};

const appendsIn = (text: string) => text.split('\n').filter((l) => l.startsWith('A ')).length;

/** Runs one life of the child, kills it after `killAfterAppends` acknowledged appends; returns its report. */
async function runChild(child: string, dir: string, cycle: number, killAfterAppends: number): Promise<string[]> {
  const reportPath = join(dir, `report-${cycle}.txt`);
  writeFileSync(reportPath, '');
  const args = [child, join(dir, 'log'), String(cycle), reportPath];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const ended = new Promise<string | null>((resolve) => proc.on('close', (_code, signal) => resolve(signal)));
  let exited = false;
  void ended.then(() => (exited = true));
  let seen = 0;
  let progressAt = Date.now();
  while (!exited) {
    const now = appendsIn(readFileSync(reportPath, 'utf8'));
    if (now >= killAfterAppends) break;
    if (now > seen) [seen, progressAt] = [now, Date.now()];
    if (Date.now() - progressAt > CHILD_STALL_MS_MAX) break;
    await new Promise((r) => setTimeout(r, REPORT_POLL_MS));
  }
  proc.kill('SIGKILL');
  const signal = await ended;
  if (signal !== 'SIGKILL') throw new Error(`child ended by itself (${signal}): ${err}`);
  const text = readFileSync(reportPath, 'utf8');
  if (appendsIn(text) < killAfterAppends) {
    throw new Error(`child stalled at ${appendsIn(text)} appends for ${CHILD_STALL_MS_MAX} ms: ${err}`);
  }
  return text.split('\n').slice(0, -1); // only whole lines: the last piece has no newline yet
}

t.test(`${CYCLES} SIGKILL cycles lose no acknowledged record`, async (t) => {
  const seed = testSeed();
  t.comment(`OUTPOST_SEED=${seed}`);
  const rand = prng(seed);
  const dir = tempDir(t);
  const child = await bundleForChild(
    fileURLToPath(new URL('../../support/crash-child.ts', import.meta.url)),
    tempDir(t),
  );
  const acknowledged = new Map<number, string>();
  let maxAckReported = 0;
  let totalAppends = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const killAfter = KILL_AFTER_APPENDS_MIN + Math.floor(rand() * (KILL_AFTER_APPENDS_MAX - KILL_AFTER_APPENDS_MIN));
    const lines = await runChild(child, dir, cycle, killAfter);
    for (const line of lines) {
      const [kind, seq, id] = line.split(' ');
      if (kind === 'A') {
        if (acknowledged.has(Number(seq))) throw new Error(`seq ${seq} acknowledged twice (seed ${seed})`);
        acknowledged.set(Number(seq), id!);
        totalAppends++;
      } else if (kind === 'K') maxAckReported = Math.max(maxAckReported, Number(seq));
    }
    const log = await RingLog.open({ dir: join(dir, 'log'), ...OPTS });
    const lane = await log.lane('upstream');
    const cursor = lane.ackedSeq();
    if (cursor > maxAckReported) throw new Error(`cursor ${cursor} is past any ack the child made (seed ${seed})`);
    const seen = new Map<number, string>();
    let prev = cursor;
    for await (const r of walkLane(lane, cursor + 1)) {
      if (r.seq <= prev) throw new Error(`out of order: ${r.seq} after ${prev} (seed ${seed})`);
      prev = r.seq;
      const id = r.body.toString().split(':')[0]!;
      if (!/^c\d+-\d+$/.test(id))
        throw new Error(`invented record ${r.seq}: ${r.body.toString().slice(0, 40)} (seed ${seed})`);
      seen.set(r.seq, id);
    }
    for (const [seq, id] of acknowledged) {
      if (seq <= cursor) continue;
      if (seen.get(seq) !== id)
        throw new Error(
          `cycle ${cycle}: acknowledged seq ${seq} (${id}) is ${seen.has(seq) ? 'different' : 'missing'} ` +
            `(seed ${seed})`,
        );
    }
    await log.close();
  }
  t.ok(totalAppends >= CYCLES * KILL_AFTER_APPENDS_MIN, `${totalAppends} acked appends, ${CYCLES} kills: all found`);
  t.ok(maxAckReported > 0, 'the consumer acked while being killed too');
});
