import t from 'tap';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CHECKPOINT_SLOT_BYTES, decodeCheckpoint } from '../../../firmware/store/checkpoint.js';
import { RingLog } from '../../../firmware/store/log.js';
import { FaultyFs } from '../../support/faulty-fs.js';
import { tempDir } from '../../support/tmp.js';

const OPTS = {
  segmentBytes: 64 * 1024,
  quotaBytes: 4 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
};

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
  t.test(
    `${code} on ${op}: the append fails with ${expected}, nothing undurable is acknowledged, the log goes on`,
    async (t) => {
      const dir = tempDir(t);
      const fs = new FaultyFs();
      const log = await RingLog.open({ dir, ...OPTS, fs });
      const lane = await log.lane('upstream');
      await lane.append({ body: Buffer.from('before') });
      fs.failNext(op, code, 1, '.seg');
      const failed = await Promise.allSettled([
        lane.append({ body: Buffer.from('lost-1') }),
        lane.append({ body: Buffer.from('lost-2') }),
      ]);
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
      t.same(
        bodies.filter((b) => !b.startsWith('lost')),
        ['before', 'after'],
        'after a reopen: acknowledged records intact',
      );
      const seqs = (await (await again.lane('upstream')).read(1)).map((r) => r.seq);
      t.same(
        seqs,
        [...new Set(seqs)].sort((a, b) => a - b),
        'no seq appears twice',
      );
      await again.close();
    },
  );
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

/** Both checkpoint slots as the file holds them now (null: blank or unreadable). */
function slots(dir: string): Array<{ generation: number; acked: number } | null> {
  const file = readFileSync(join(dir, 'checkpoint'));
  return [0, 1].map((i) => {
    const state = decodeCheckpoint(file.subarray(i * CHECKPOINT_SLOT_BYTES, (i + 1) * CHECKPOINT_SLOT_BYTES));
    return state && { generation: state.generation, acked: state.lanes.get('upstream')?.ackedSeq ?? 0 };
  });
}

t.test('a failed checkpoint write leaves the previous one intact through the retry; retention trusts it', async (t) => {
  const dir = tempDir(t);
  const fs = new FaultyFs();
  const log = await RingLog.open({ dir, ...OPTS, fs });
  const lane = await log.lane('upstream');
  for (let i = 0; i < 10; i++) await lane.append({ body: Buffer.from(String(i)) });
  lane.ack(3);
  await log.writeCheckpoint();
  const good = slots(dir).findIndex((s) => s?.acked === 3);
  t.ok(good >= 0, 'the checkpoint with ack 3 is in a slot');
  const goodSlot = slots(dir)[good];
  lane.ack(8);
  fs.failNext('datasync', 'EIO', 1, 'checkpoint');
  await t.rejects(log.writeCheckpoint(), { code: 'EIO' });
  t.same(slots(dir)[good], goodSlot, 'the failed write went to the other slot');
  t.equal(lane.durableAckedSeq, 3, 'retention still believes only the durable checkpoint');
  await log.writeCheckpoint();
  t.same(slots(dir)[good], goodSlot, 'the retry went to the slot of the failed write, not over the good one');
  t.equal(slots(dir)[1 - good]?.acked, 8, 'and holds ack 8');
  t.equal(lane.durableAckedSeq, 8, 'once durable, retention may use it');
  await log.close();
});
