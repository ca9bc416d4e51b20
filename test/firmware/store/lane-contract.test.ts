import t from 'tap';
import { RingLog } from '../../../firmware/store/log.js';
import { laneContract } from '../../support/lane-contract.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { tempDir } from '../../support/tmp.js';

/** One contract, both lanes the pump is ever given: the real ring-log lane and the pump tests' double. */
const SMALL = {
  segmentBytes: 64 * 1024,
  quotaBytes: 4 * 1024 * 1024,
  recordBytesMax: 8 * 1024,
  groupCommitBytesMax: 16 * 1024,
};

await laneContract(t, 'ring log lane', async (t) => {
  const log = await RingLog.open({ dir: tempDir(t), ...SMALL });
  return { lane: await log.lane('upstream'), close: () => log.close() };
});

await laneContract(t, 'MemoryLane (the pump tests’ double)', async () => ({
  lane: new MemoryLane('upstream'),
  close: async () => undefined,
}));
