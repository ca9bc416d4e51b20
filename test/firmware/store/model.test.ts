import t, { type Test } from 'tap';
import { ManualClock } from '../../support/manual-clock.js';
import { RingLog } from '../../../firmware/store/log.js';
import type { Lane } from '../../../firmware/store/lane.js';
import { prng, testSeed } from '../../support/prng.js';
import { tempDir } from '../../support/tmp.js';

/**
 * Model-based test: random sequences of append / read / ack / reopen / clock steps against a plain
 * in-memory model of what the log must return. Replay a failure with OUTPOST_SEED=<seed>.
 */
const OPTS = {
  segmentBytes: 64 * 1024,
  quotaBytes: 64 * 1024 * 1024,
  recordBytesMax: 16 * 1024,
  groupCommitBytesMax: 32 * 1024,
};
const RUNS = 6;
const STEPS_PER_RUN = 250;
const DAY_MS = 86_400_000;

interface ModelRecord {
  seq: number;
  body: string;
  expiresAt: number; // model store-clock ms, 0 = never
}

t.test('the log behaves like the model', async (t) => {
  for (let run = 0; run < RUNS; run++) {
    const seed = testSeed();
    t.comment(`model run ${run}: OUTPOST_SEED=${seed}`);
    await modelRun(t, seed);
  }
});

async function modelRun(t: Test, seed: number): Promise<void> {
  const rand = prng(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const dir = tempDir(t);
  const clock = new ManualClock({ synced: false });
  let log = await RingLog.open({ dir, ...OPTS, clock });
  let lane: Lane = await log.lane('upstream');
  const model: ModelRecord[] = [];
  let modelNow = 0; // store-clock ms elapsed since the start: only real (monotonic) time counts
  let acked = 0;
  let lastSeq = 0;
  let recordsCompared = 0;
  const ctx = `seed ${seed}`;
  for (let step = 0; step < STEPS_PER_RUN; step++) {
    const op = int(100);
    if (op < 40) {
      const n = 1 + int(50);
      const appends = [];
      for (let i = 0; i < n; i++) {
        const ttlSecs = [0, 5, 60, 3600][int(4)]!;
        const body = `${step}:${i}:${'x'.repeat(int(3000))}`;
        appends.push(lane.append({ body: Buffer.from(body), ttlSecs }).then((seq) => ({ seq, body, ttlSecs })));
      }
      for (const { seq, body, ttlSecs } of await Promise.all(appends)) {
        if (seq <= lastSeq) throw new Error(`${ctx}: seq ${seq} not above ${lastSeq}`);
        lastSeq = seq;
        model.push({ seq, body, expiresAt: ttlSecs === 0 ? 0 : modelNow + ttlSecs * 1000 });
      }
    } else if (op < 70) {
      const from = acked + 1 + int(Math.max(1, lastSeq - acked + 2));
      const recordsMax = 1 + int(200);
      const got = (await lane.read(from, { recordsMax })).map((r) => `${r.seq}|${r.body.toString()}`);
      const want = model
        .filter((r) => r.seq >= from && (r.expiresAt === 0 || r.expiresAt > modelNow))
        .slice(0, recordsMax)
        .map((r) => `${r.seq}|${r.body}`);
      recordsCompared += want.length;
      if (JSON.stringify(got) !== JSON.stringify(want)) {
        t.same(got, want, `${ctx} step ${step}: read(${from}, ${recordsMax})`);
        return;
      }
    } else if (op < 82) {
      acked = Math.min(lastSeq, acked + int(Math.max(1, lastSeq - acked + 1)));
      lane.ack(acked);
      if (lane.ackedSeq() !== acked) throw new Error(`${ctx}: ackedSeq ${lane.ackedSeq()} != ${acked}`);
    } else if (op < 88) {
      await log.close();
      log = await RingLog.open({ dir, ...OPTS, clock });
      lane = await log.lane('upstream');
      if (lane.ackedSeq() !== acked)
        throw new Error(`${ctx}: cursor ${lane.ackedSeq()} after reopen, expected ${acked}`);
    } else if (op < 95) {
      const ms = [100, 2000, 30_000, 700_000][int(4)]!;
      clock.advance(ms);
      modelNow += ms;
    } else {
      clock.stepWall((rand() < 0.5 ? -1 : 1) * (1 + int(30)) * DAY_MS); // NTP steps: no effect on TTL
    }
  }
  const stats = log.stats().lanes[0]!;
  t.ok(recordsCompared > 0, `${ctx}: ${recordsCompared} records compared with the model`);
  t.equal(stats.ackedSeq, acked, `${ctx}: final cursor`);
  t.ok(stats.lastSeq <= lastSeq, `${ctx}: no invented records`);
  await log.close();
}
