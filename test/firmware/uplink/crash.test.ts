import t from 'tap';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { bundleForChild } from '../../support/bundle.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber, checkDelivery } from '../../support/delivery.js';
import { prng, testSeed } from '../../support/prng.js';
import { tempDir } from '../../support/tmp.js';

/**
 * outpost SIGKILLed mid-drain, again and again, then left to finish: a subscriber at the broker must get
 * every message, in stored order per first delivery, with replays only as deep as what the dead process
 * had in flight, unflushed in its ack batch, or acknowledged since the store last wrote its cursor.
 */

const TOTAL = 10_000;
const KILLS = 4;
const INFLIGHT_MAX = 100;
/** The pump's default ack batch: acknowledged records it may hold before telling the store. */
const ACK_BATCH_RECORDS = 64;
/** The child's checkpoint period; records acked within it (plus the write itself) replay after a SIGKILL. */
const CHECKPOINT_INTERVAL_MS = 10;
/** Loose bound on what the drain acknowledges in one checkpoint period plus a write under load. */
const CHECKPOINT_LAG_RECORDS_MAX = 1_000;
/** A kill comes after the drain moved this many records (at least) in the current run: mid-drain. */
const KILL_AFTER_RECORDS_MIN = 300;
const KILL_AFTER_RECORDS_SPREAD = 1_500;
/** A run that stops reporting for this long has hung. */
const CHILD_SILENCE_MS_MAX = 30_000;

interface Run {
  killed: boolean;
  /** acked cursor the run started from, and the last it reported */
  firstAcked: number;
  lastAcked: number;
}

function runChild(child: string, args: string[], killAfterRecords: number | null): Promise<Run> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [child, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    const run: Run = { killed: false, firstAcked: -1, lastAcked: -1 };
    let out = '';
    let err = '';
    let silence = setTimeout(() => proc.kill('SIGKILL'), CHILD_SILENCE_MS_MAX);
    proc.stdout.on('data', (d: Buffer) => {
      clearTimeout(silence);
      silence = setTimeout(() => proc.kill('SIGKILL'), CHILD_SILENCE_MS_MAX);
      out += d.toString();
      const lines = out.split('\n');
      out = lines.pop()!;
      for (const line of lines) {
        const [kind, value] = line.split(' ');
        if (kind !== 'P') continue;
        run.lastAcked = Number(value);
        if (run.firstAcked < 0) run.firstAcked = run.lastAcked;
        if (killAfterRecords !== null && !run.killed && run.lastAcked - run.firstAcked >= killAfterRecords) {
          run.killed = true;
          proc.kill('SIGKILL');
        }
      }
    });
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.on('error', reject);
    proc.on('close', (code, signal) => {
      clearTimeout(silence);
      if (signal === 'SIGKILL' && run.killed) resolve(run);
      else if (code === 0 && !run.killed) resolve(run);
      else reject(new Error(`uplink child ended with ${code}/${signal}: ${err.slice(-2_000)}`));
    });
  });
}

t.test(`${KILLS} SIGKILLs mid-drain lose nothing (${TOTAL} messages)`, async (t) => {
  const seed = testSeed();
  t.comment(`OUTPOST_SEED=${seed}`);
  const rand = prng(seed);
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(broker.url, 'outpost/gw-crash/+/telemetry');
  t.teardown(() => sub.close());
  const child = await bundleForChild(
    fileURLToPath(new URL('../../support/uplink-child.ts', import.meta.url)),
    tempDir(t),
  );
  const dir = tempDir(t);
  const args = [dir, broker.url, String(TOTAL), 'gw-crash', String(CHECKPOINT_INTERVAL_MS)];

  const runs: Run[] = [];
  for (let kill = 0; kill < KILLS; kill += 1) {
    const run = await runChild(child, args, KILL_AFTER_RECORDS_MIN + Math.floor(rand() * KILL_AFTER_RECORDS_SPREAD));
    runs.push(run);
    t.ok(
      run.killed && run.lastAcked < TOTAL,
      `run ${kill + 1} killed mid-drain at acked ${run.lastAcked} (started at ${run.firstAcked})`,
    );
  }
  const last = await runChild(child, args, null);
  t.equal(last.lastAcked, TOTAL, 'the last run drained everything and stopped cleanly');
  t.ok(
    runs.every((run, i) => i === 0 || run.firstAcked >= runs[i - 1]!.firstAcked),
    'each restart resumed from a persisted cursor, never behind the one before',
  );

  t.ok(await sub.waitForDistinct(TOTAL, 30_000), 'every message reached the subscriber');
  const window = INFLIGHT_MAX + ACK_BATCH_RECORDS + CHECKPOINT_LAG_RECORDS_MAX;
  const result = checkDelivery(sub.values, TOTAL, window);
  t.same(result.problems, [], `in order per first delivery, replays at most ${window} deep`);
  t.comment(`replays ${result.replays}, duplicates ${result.duplicates} over ${KILLS} kills`);
});
