import t from 'tap';
import { RingLog } from '../../../firmware/store/log.js';
import { FaultyFs } from '../../support/faulty-fs.js';
import { tempDir } from '../../support/tmp.js';

const OPTS = { segmentBytes: 64 * 1024, quotaBytes: 4 * 1024 * 1024, recordBytesMax: 8 * 1024, groupCommitBytesMax: 16 * 1024 };

async function allBodies(log: RingLog): Promise<string[]> {
  const lane = await log.lane('upstream');
  return (await lane.read(1, { recordsMax: 10_000 })).map((r) => r.body.toString());
}

for (const [op, code, expected] of [
  ['write', 'ENOSPC', 'FULL'],
  ['write', 'EIO', 'IO'],
  ['datasync', 'EIO', 'IO'],
  ['write', 'EROFS', 'IO'],
] as const) {
  t.test(`${code} on ${op}: the append fails with ${expected}, nothing undurable is acknowledged, the log goes on`, async (t) => {
    const dir = tempDir(t);
    const fs = new FaultyFs();
    const log = await RingLog.open({ dir, ...OPTS, fs });
    const lane = await log.lane('upstream');
    await lane.append({ body: Buffer.from('before') });
    fs.failNext(op, code, 1, '.seg');
    const failed = await Promise.allSettled([lane.append({ body: Buffer.from('lost-1') }), lane.append({ body: Buffer.from('lost-2') })]);
    t.match(failed, [
      { status: 'rejected', reason: { code: expected } },
      { status: 'rejected', reason: { code: expected } },
    ]);
    t.same(await allBodies(log), ['before'], 'readers never see the failed records');
    await lane.append({ body: Buffer.from('after') });
    t.same(await allBodies(log), ['before', 'after'], 'appends succeed again once the fault clears');
    await log.close();

    const again = await RingLog.open({ dir, ...OPTS });
    const bodies = await allBodies(again);
    t.same(bodies.filter((b) => !b.startsWith('lost')), ['before', 'after'], 'after a reopen: acknowledged records intact');
    const seqs = (await (await again.lane('upstream')).read(1)).map((r) => r.seq);
    t.same(seqs, [...new Set(seqs)].sort((a, b) => a - b), 'no seq appears twice');
    await again.close();
  });
}

t.test('EIO creating a segment or syncing its directory fails the batch, never the process', async (t) => {
  for (const op of ['open', 'syncDir'] as const) {
    const dir = tempDir(t);
    const fs = new FaultyFs();
    const log = await RingLog.open({ dir, ...OPTS, fs });
    const lane = await log.lane('upstream');
    fs.failNext(op, 'EIO', 1, op === 'open' ? '.seg' : 'upstream');
    await t.rejects(lane.append({ body: Buffer.from('x') }), { code: 'IO' }, `${op} failure reported`);
    t.ok(await lane.append({ body: Buffer.from('y') }), `${op}: next append works`);
    t.same(await allBodies(log), ['y']);
    await log.close();
  }
});

t.test('a failing checkpoint write keeps the previous checkpoint; the cursor is never ahead of it', async (t) => {
  const dir = tempDir(t);
  const fs = new FaultyFs();
  const log = await RingLog.open({ dir, ...OPTS, fs });
  const lane = await log.lane('upstream');
  for (let i = 0; i < 10; i++) await lane.append({ body: Buffer.from(String(i)) });
  lane.ack(3);
  await log.writeCheckpoint();
  lane.ack(8);
  fs.failNext('datasync', 'EIO', 5, 'checkpoint');
  await t.rejects(log.writeCheckpoint(), { code: 'EIO' });
  t.equal(lane.durableAckedSeq, 3, 'retention still believes only the durable checkpoint');
  fs.clear();
  await log.close();
  const again = await RingLog.open({ dir, ...OPTS });
  t.ok((await again.lane('upstream')).ackedSeq() >= 3, 'restart resumes from a valid checkpoint');
  await again.close();
});
