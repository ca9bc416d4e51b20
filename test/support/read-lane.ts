import type { Lane } from '../../firmware/store/lane.js';
import type { StoredRecord } from '../../firmware/store/types.js';

/** Records per read while walking a lane. */
const WALK_READ_RECORDS_MAX = 1000;

/** Every record of `lane` from `from` on, in the order the log returns them (checks are the caller's). */
export async function* walkLane(lane: Lane, from: number): AsyncGenerator<StoredRecord> {
  let next = from;
  for (;;) {
    const recs = await lane.read(next, { recordsMax: WALK_READ_RECORDS_MAX });
    if (recs.length === 0) return;
    yield* recs;
    next = recs[recs.length - 1]!.seq + 1;
  }
}
