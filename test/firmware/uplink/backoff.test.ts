import t from 'tap';
import { Backoff } from '../../../firmware/uplink/backoff.js';

t.test('full jitter: delays are uniform below a ceiling that doubles up to the maximum', async (t) => {
  const draws = [0.5, 0.999, 0, 0.25, 0.999, 0.999, 0.999];
  const backoff = new Backoff({ baseMs: 100, maxMs: 1_000, random: () => draws.shift()! });
  t.same(
    Array.from({ length: 7 }, () => backoff.nextDelayMs()),
    [50, 199, 0, 200, 999, 999, 999],
    'ceilings 100, 200, 400, 800, then capped at 1000',
  );
  t.ok(backoff.atMax());
  backoff.reset();
  t.equal(backoff.ceilingMs(), 100, 'reset starts over at the base');
});

t.test('defaults: 500 ms base, 60 s maximum', async (t) => {
  const backoff = new Backoff({ random: () => 0.999_999 });
  for (let i = 0; i < 100; i += 1) backoff.nextDelayMs();
  t.equal(backoff.ceilingMs(), 60_000);
  t.equal(backoff.nextDelayMs(), 59_999);
});

t.test('options are checked by name', async (t) => {
  t.throws(() => new Backoff({ baseMs: 0 }), /"backoff.baseMs" must be at least 1 ms/);
  t.throws(() => new Backoff({ baseMs: 10, maxMs: 5 }), /"backoff.maxMs" must be at least "backoff.baseMs"/);
  t.throws(() => new Backoff({ factor: 0.5 }), /"backoff.factor" must be at least 1/);
});

t.test('after a throttling answer: the floor plus a full-jitter draw over max(floor, ceiling)', async (t) => {
  const draws = [0, 0.5, 0, 0, 0, 0.999, 0.5];
  const backoff = new Backoff({ baseMs: 100, maxMs: 8_000, random: () => draws.shift()! });
  t.equal(backoff.throttledDelayMs(2_000), 2_000, 'never below the floor');
  t.equal(backoff.throttledDelayMs(2_000), 3_000, 'spread over the floor again while the ceiling is lower');
  backoff.nextDelayMs();
  backoff.nextDelayMs();
  backoff.nextDelayMs();
  t.equal(backoff.ceilingMs(), 3_200, 'each throttled attempt counts towards the ceiling like any other');
  t.equal(backoff.throttledDelayMs(2_000), 2_000 + Math.floor(0.999 * 3_200), 'over the ceiling once it is the larger');
  t.equal(backoff.jitterMs(500), 250, 'a link-up jitter draw comes from the same injected source');
});
