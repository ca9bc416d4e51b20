import t from 'tap';
import { TokenBucket } from '../../../firmware/uplink/rate.js';
import { ManualClock } from '../../support/manual-clock.js';

t.test('the same cap applied again does not refill the bucket; a new cap does', async (t) => {
  const bucket = new TokenBucket(0, new ManualClock());
  bucket.setRate(4_000);
  for (let i = 0; i < 4; i += 1) t.equal(bucket.take(1_000), 0, `burst message ${i + 1} goes at once`);
  t.ok(bucket.take(1_000) > 0, 'the burst is spent');
  bucket.setRate(4_000); // a settings document read once more
  t.ok(bucket.take(1_000) > 0, 'still spent: re-applying the same cap gives no second burst');
  bucket.setRate(8_000);
  t.equal(bucket.take(1_000), 0, 'a changed cap starts with its own burst');
});
