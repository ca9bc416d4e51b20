import type { Workload, WorkloadContext } from './powercut.js';

/** Appends from several producers at once, so group commits hold several records each. */
async function burst(ctx: WorkloadContext, lane: string, count: number, ttlSecs = 0): Promise<void> {
  await Promise.all(Array.from({ length: count }, () => ctx.append(lane, ttlSecs)));
}

/** The retention timer's pass, as production runs it every retentionIntervalMs (see BASE_OPTS). */
function retentionTick(ctx: WorkloadContext): Promise<void> {
  return ctx.log.maintenancePass();
}

/** Reads what is there and acknowledges a random prefix of it, like the drain pump does. */
async function drainSome(ctx: WorkloadContext, laneName: string): Promise<void> {
  const lane = ctx.log.lanes.get(laneName);
  if (!lane) return;
  const recs = await lane.read(lane.ackedSeq() + 1, { recordsMax: 50 });
  if (recs.length === 0) return;
  ctx.ack(laneName, recs[Math.floor(ctx.rand() * recs.length)]!.seq);
}

export const steadyAppends: Workload = {
  name: 'steady-appends',
  opts: { segmentBytes: 16 * 1024 },
  lanes: ['upstream'],
  async run(ctx) {
    for (let round = 0; round < 80; round++) {
      await burst(ctx, 'upstream', 1 + Math.floor(ctx.rand() * 6));
      if (round % 8 === 7) await retentionTick(ctx);
    }
  },
};

export const rollsAcksQuota: Workload = {
  name: 'rolls-acks-retention-quota',
  opts: { segmentBytes: 4096, quotaBytes: 8192 + 5 * 4096, quotaPolicy: 'drop-oldest' },
  lanes: ['upstream', 'priority'],
  async run(ctx) {
    for (let round = 0; round < 40; round++) {
      await burst(ctx, round % 3 === 0 ? 'priority' : 'upstream', 2 + Math.floor(ctx.rand() * 6));
      if (round % 4 === 1) await drainSome(ctx, 'priority');
      if (round % 5 === 2) await drainSome(ctx, 'upstream');
      // An injected EIO may fail the checkpoint: the run goes on.
      if (round % 6 === 5) await ctx.log.writeCheckpoint().catch(() => undefined);
      if (round % 2 === 0) await retentionTick(ctx);
    }
  },
};

export const ttlAndCheckpoints: Workload = {
  name: 'ttl-expiry-checkpoints',
  opts: { segmentBytes: 4096 },
  lanes: ['upstream'],
  async run(ctx) {
    for (let round = 0; round < 40; round++) {
      await burst(ctx, 'upstream', 1 + Math.floor(ctx.rand() * 5), 1 + Math.floor(ctx.rand() * 20));
      ctx.clock.advance(Math.floor(ctx.rand() * 3000));
      await retentionTick(ctx);
      if (round % 3 === 2) {
        await drainSome(ctx, 'upstream');
        await ctx.log.writeCheckpoint().catch(() => undefined); // an injected EIO may fail it: the run goes on
      }
    }
  },
};

export const WORKLOADS: Workload[] = [steadyAppends, rollsAcksQuota, ttlAndCheckpoints];
