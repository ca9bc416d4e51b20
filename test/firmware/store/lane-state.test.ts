import t from 'tap';
import type { LaneHost } from '../../../firmware/store/lane-host.js';
import { Lane } from '../../../firmware/store/lane.js';
import { emptySegment } from '../../../firmware/store/segment.js';

/**
 * Lane's state changes go through its own methods, and those assert their invariants: recovery adopts
 * segments in segment order, and a checkpoint never claims a cursor the lane has not reached. Either
 * would be a store bug that silently reorders reads or lets retention delete undelivered records.
 */

function lane(): Lane {
  // None of the methods under test touch the host: it stands for the log, which they do not need.
  return new Lane('upstream', '/nonexistent/lanes', {} as LaneHost);
}

t.test('recovery adopts segments in segment order only', async (t) => {
  const l = lane();
  l.adoptSegment(emptySegment(2, 1, 'a'), null);
  t.throws(() => l.adoptSegment(emptySegment(2, 5, 'b'), null), /segment 2 adopted out of order/, 'a repeat');
  t.throws(() => l.adoptSegment(emptySegment(1, 5, 'c'), null), /segment 1 adopted out of order/, 'an older one');
  l.adoptSegment(emptySegment(3, 5, 'd'), null);
  t.same(
    l.segments.map((s) => s.no),
    [2, 3],
    'only the ordered ones were kept',
  );
});

t.test('restore sets the cursor once; a checkpoint ahead of the lane is refused', async (t) => {
  const l = lane();
  l.restore(10, { ackedSeq: 4, nextSeq: 12 });
  t.equal(l.nextSeq, 12, 'the next seq passes both the disk and the checkpoint');
  t.equal(l.ackedSeq(), 4);
  t.equal(l.durableAckedSeq, 4);
  t.equal(l.lastDurableSeq(), 10);
  t.throws(() => l.checkpointed(5, 12), /checkpoint ahead of the lane/, 'an acked seq the lane never reached');
  t.throws(() => l.checkpointed(4, 13), /checkpoint ahead of the lane/, 'a next seq the lane never issued');
  t.equal(l.durableAckedSeq, 4, 'a refused checkpoint changes nothing');
  l.checkpointed(4, 12);
  t.equal(l.durableNextSeq, 12);
});
