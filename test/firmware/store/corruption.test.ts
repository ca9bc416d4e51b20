import t from 'tap';
import { readFileSync, readdirSync, statSync, truncateSync, writeFileSync, appendFileSync } from 'node:fs';
import { join } from 'node:path';
import { RingLog } from '../../../firmware/store/log.js';
import type { DamageReport } from '../../../firmware/store/types.js';
import { tempDir } from '../../support/tmp.js';

/** Header + property n=000123 (1 + 1 + 2 + 6 bytes) + 100-byte body. */
const REC = 32 + 10 + 100;
const OPTS = {
  segmentBytes: 64 * 1024,
  quotaBytes: 4 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
};

async function fill(dir: string, count: number, bodyBytes = 100): Promise<void> {
  const log = await RingLog.open({ dir, ...OPTS });
  const lane = await log.lane('upstream');
  await Promise.all(
    Array.from({ length: count }, (_, i) =>
      lane.append({ body: Buffer.alloc(bodyBytes, i % 251), properties: { n: String(i + 1).padStart(6, '0') } }),
    ),
  );
  await log.close();
}

async function readAll(dir: string, onDamage?: (d: DamageReport) => void) {
  const log = await RingLog.open({ dir, ...OPTS, onDamage });
  const lane = await log.lane('upstream');
  const seqs: number[] = [];
  let from = 1;
  for (;;) {
    const recs = await lane.read(from, { recordsMax: 200 });
    if (recs.length === 0) break;
    for (const r of recs) {
      if (Number(r.properties.n) !== r.seq || !r.body.equals(Buffer.alloc(100, (r.seq - 1) % 251)))
        throw new Error(`record ${r.seq} is not what was written`);
      seqs.push(r.seq);
    }
    from = recs[recs.length - 1]!.seq + 1;
  }
  return { log, lane, seqs };
}

function segments(dir: string): string[] {
  return readdirSync(join(dir, 'lanes', 'upstream'))
    .sort()
    .map((n) => join(dir, 'lanes', 'upstream', n));
}

t.test('the last record torn at every byte offset: detected, truncated, the rest intact, appends go on', async (t) => {
  const base = tempDir(t);
  await fill(base, 20);
  const [seg] = segments(base);
  const full = readFileSync(seg!);
  const recordBytes = REC;
  const lastStart = full.length - recordBytes;
  for (let cut = lastStart; cut < full.length; cut++) {
    writeFileSync(seg!, full.subarray(0, cut));
    const damage: DamageReport[] = [];
    const { log, lane, seqs } = await readAll(base, (d) => damage.push(d));
    t.same(
      seqs,
      Array.from({ length: 19 }, (_, i) => i + 1),
      `cut at ${cut}: records 1..19 intact`,
    );
    if (cut > lastStart)
      t.match(damage, [{ kind: 'torn-tail', fromByte: lastStart, toByte: cut }], `cut at ${cut} reported`);
    t.equal(statSync(seg!).size, lastStart, 'torn tail truncated on disk');
    t.ok((await lane.append({ body: Buffer.alloc(100, 0) })) > 19, 'the next append reuses no seq');
    await log.close();
  }
});

t.test('zeros after the last record (a torn sector) are a torn tail', async (t) => {
  const dir = tempDir(t);
  await fill(dir, 10);
  appendFileSync(segments(dir)[0]!, Buffer.alloc(512));
  const damage: DamageReport[] = [];
  const { log, seqs } = await readAll(dir, (d) => damage.push(d));
  t.equal(seqs.length, 10);
  t.match(damage, [{ kind: 'torn-tail' }]);
  await log.close();
});

t.test('bit rot in the middle of a sealed segment: reported, skipped, everything else readable', async (t) => {
  const dir = tempDir(t);
  await fill(dir, 1500);
  const segs = segments(dir);
  t.ok(segs.length >= 3, 'several segments');
  const victim = segs[1]!;
  const bytes = readFileSync(victim);
  const flipAt = REC * 10 + 50; // inside the 11th record's body
  bytes[flipAt]! ^= 0x10;
  writeFileSync(victim, bytes);
  const damage: DamageReport[] = [];
  const { log, seqs } = await readAll(dir, (d) => damage.push(d));
  const firstInVictim = Number(victim.match(/-(\d+)\.seg$/)![1]);
  const lost = firstInVictim + 10;
  t.notOk(seqs.includes(lost), `record ${lost} (damaged) is not returned`);
  t.equal(seqs.length, 1499, 'exactly one record lost');
  t.same(
    seqs,
    [...seqs].sort((a, b) => a - b),
    'still in order',
  );
  t.match(damage, [{ kind: 'corrupt', fromByte: REC * 10, toByte: REC * 11 }]);
  t.equal(log.stats().corruptRecords, 1);
  t.equal(log.stats().corruptBytes, REC);
  await log.close();
});

t.test('bit rot in the middle of the last segment is found at open, and later records are kept', async (t) => {
  const dir = tempDir(t);
  await fill(dir, 30);
  const [seg] = segments(dir);
  const bytes = readFileSync(seg!);
  bytes[REC * 5 + 3]! ^= 0xff; // the CRC field of record 6
  writeFileSync(seg!, bytes);
  const damage: DamageReport[] = [];
  const { log, lane, seqs } = await readAll(dir, (d) => damage.push(d));
  t.same(
    damage.map((d) => d.kind),
    ['corrupt'],
    'reported as corruption, not as a torn tail',
  );
  t.equal(seqs.length, 29);
  t.notOk(seqs.includes(6));
  t.equal(await lane.append({ body: Buffer.alloc(100, 30) }), 31);
  await log.close();
});

t.test('every segment mangled: the log still opens and returns only intact records', async (t) => {
  const dir = tempDir(t);
  await fill(dir, 1200);
  for (const [i, seg] of segments(dir).entries()) {
    const bytes = readFileSync(seg);
    for (let k = 0; k < 20; k++) bytes[(k * 7919 + i * 104729) % bytes.length]! ^= 0x5a;
    writeFileSync(seg, bytes);
  }
  truncateSync(join(dir, 'checkpoint'), 100);
  const { log, seqs } = await readAll(dir);
  t.ok(seqs.length > 0 && seqs.length < 1200, `${seqs.length} intact records returned, damaged ones skipped`);
  t.same(
    seqs,
    [...new Set(seqs)].sort((a, b) => a - b),
    'no duplicates, in order',
  );
  t.ok(log.stats().corruptRecords > 0);
  await log.close();
});
