import t from 'tap';
import { spawn } from 'node:child_process';
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
 * SIGKILL cannot: lost page cache.)
 */
const CYCLES = 50;
const KILL_AFTER_MS_MAX = 250;

const OPTS = { segmentBytes: 64 * 1024, quotaBytes: 64 * 1024 * 1024, recordBytesMax: 8 * 1024, groupCommitBytesMax: 16 * 1024 };

function runChild(child: string, dir: string, cycle: number, killAfterMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, dir, String(cycle)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    proc.stdout.on('data', (d: Buffer) => {
      if (out.length === 0) setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
      out += d.toString();
    });
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      if (signal !== 'SIGKILL') reject(new Error(`child ended with ${code}/${signal}: ${err}`));
      else resolve(out.split('\n').slice(0, -1)); // the last piece may be a torn line
    });
  });
}

t.test(`${CYCLES} SIGKILL cycles lose no acknowledged record`, async (t) => {
  const seed = testSeed();
  t.comment(`OUTPOST_SEED=${seed}`);
  const rand = prng(seed);
  const dir = tempDir(t);
  const child = await bundleForChild(fileURLToPath(new URL('../../support/crash-child.ts', import.meta.url)), tempDir(t));
  const acknowledged = new Map<number, string>();
  let maxAckReported = 0;
  let totalAppends = 0;
  for (let cycle = 0; cycle < CYCLES; cycle++) {
    const lines = await runChild(child, dir, cycle, 5 + Math.floor(rand() * KILL_AFTER_MS_MAX));
    for (const line of lines) {
      const [kind, seq, id] = line.split(' ');
      if (kind === 'A') {
        if (acknowledged.has(Number(seq))) throw new Error(`seq ${seq} acknowledged twice (seed ${seed})`);
        acknowledged.set(Number(seq), id!);
        totalAppends++;
      } else if (kind === 'K') maxAckReported = Math.max(maxAckReported, Number(seq));
    }
    const log = await RingLog.open({ dir, ...OPTS });
    const lane = await log.lane('upstream');
    const cursor = lane.ackedSeq();
    if (cursor > maxAckReported) throw new Error(`cursor ${cursor} is past any ack the child made (seed ${seed})`);
    const seen = new Map<number, string>();
    let prev = cursor;
    for await (const r of walkLane(lane, cursor + 1)) {
      if (r.seq <= prev) throw new Error(`out of order: ${r.seq} after ${prev} (seed ${seed})`);
      prev = r.seq;
      const id = r.body.toString().split(':')[0]!;
      if (!/^c\d+-\d+$/.test(id)) throw new Error(`invented record ${r.seq}: ${r.body.toString().slice(0, 40)} (seed ${seed})`);
      seen.set(r.seq, id);
    }
    for (const [seq, id] of acknowledged) {
      if (seq <= cursor) continue;
      if (seen.get(seq) !== id) throw new Error(`cycle ${cycle}: acknowledged seq ${seq} (${id}) is ${seen.has(seq) ? 'different' : 'missing'} (seed ${seed})`);
    }
    await log.close();
  }
  t.ok(totalAppends > CYCLES * 10, `${totalAppends} acknowledged appends over ${CYCLES} kills, all found`);
  t.ok(maxAckReported > 0, 'the consumer acked while being killed too');
});
