import t from 'tap';
import { SCOPE_IDENTITIES_MAX } from '../../../firmware/auth/identity.js';
import { TwinError, TwinStore } from '../../../firmware/twin/store.js';
import { tempDir } from '../../support/tmp.js';

// Every identity the scope lets connect (devices and modules alike have twins) and the gateway itself keep
// a twin; the store's bound is that many, so a full scope never sees a twin refused.
t.test('the twin store holds a twin for every identity a full scope allows, plus the gateway', async (t) => {
  const store = await TwinStore.open(tempDir(t));
  const ids = ['gw', ...Array.from({ length: SCOPE_IDENTITIES_MAX }, (_, i) => `dev-${i >> 1}/${i % 2 ? 'mod' : 'x'}`)];
  for (const id of ids) await store.patchReported(id, { n: 1 });
  t.pass(`${ids.length} twins kept`);
  const refused = await store.patchReported('one-more', { n: 1 }).then(
    () => null,
    (err: unknown) => err,
  );
  t.ok(refused instanceof TwinError && refused.code === 'twins-max', 'one more is refused as twins-max');
  await store.flush();
});
