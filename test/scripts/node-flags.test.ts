import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');
const FLAGS = (JSON.parse(read('scripts/node-flags.json')) as { flags: string[] }).flags;
const NODE = `node ${FLAGS.join(' ')} `;

t.test('the V8 flags are sizing flags only, never a hard heap limit', async (t) => {
  t.ok(FLAGS.length > 0);
  for (const flag of FLAGS) t.match(flag, /^--[a-z-]+=\d+$/, flag);
  // A hard old-space limit turns a large live heap into an out-of-memory crash loop under systemd.
  t.notOk(
    FLAGS.some((f) => f.startsWith('--max-old-space-size') || f.startsWith('--max-heap-size')),
    'no hard limit',
  );
});

t.test('every launcher passes the same V8 flags', async (t) => {
  const scripts = (JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts;
  for (const name of ['start', 'outpost', 'bench'])
    t.ok(scripts[name]!.includes(`&& ${NODE}dist/`), `npm run ${name}: ${scripts[name]}`);
  // The unit runs the OTA launcher, which runs the current release's node with the flags.
  const execStart = /^ExecStart=(.*)$/m.exec(read('scripts/systemd/outpost.service'))?.[1] ?? '';
  t.ok(execStart.startsWith('/opt/outpost/launch run'), `unit: ${execStart}`);
  t.equal(/^NODE_FLAGS="(.*)"$/m.exec(read('scripts/pack/ota-launch.sh'))?.[1], FLAGS.join(' '), 'OTA launcher');
  const wrapper = /^exec "\$PREFIX\/current\/bin\/node" (.*) "\$PREFIX\/current\/outpost.js"/m.exec(
    read('scripts/pack/install.sh'),
  )?.[1];
  t.equal(wrapper, FLAGS.join(' '), 'install.sh wrapper');
  // The bundle's shebang and the ship benchmark read the file itself.
  t.match(read('scripts/build.js'), /banner: `#!\/usr\/bin\/env -S node \$\{NODE_FLAGS\.join\(' '\)\}`/);
  t.match(read('bench/ship.ts'), /scripts\/node-flags\.json/);
});
