// Bundles the runtime (and the benchmarks) with esbuild. Native addons and packages that load them
// stay external: they are shipped beside the bundle, built for the target architecture.
import { build } from 'esbuild';
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXTERNAL_PACKAGES } from './externals.js';

/** V8 flags every launcher passes; see the file for why. */
const NODE_FLAGS = JSON.parse(readFileSync(new URL('./node-flags.json', import.meta.url), 'utf8')).flags;

const ZLIB_COMPAT = resolve(dirname(fileURLToPath(import.meta.url)), '../firmware/ops/zlib-compat.ts');

/**
 * Sends the gateway's zlib imports through firmware/ops/zlib-compat.ts, which supplies zlib.crc32 on Node
 * before 20.15: the armv7 release ships Node 20.11.0, the newest Node 20 published for that target.
 */
const zlibCompat = {
  name: 'zlib-compat',
  setup(b) {
    b.onResolve({ filter: /^(node:)?zlib$/ }, (args) => (args.importer === ZLIB_COMPAT ? undefined : { path: ZLIB_COMPAT }));
  },
};

const targets = [
  // The shebang carries the same V8 flags as every other launcher (scripts/node-flags.json).
  { entry: 'firmware/main.ts', out: 'dist/outpost.js', banner: `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`, plugins: [zlibCompat] },
  // Split: each benchmark (and its peers' code) is a chunk loaded only by the run that needs it, so a
  // store child's RSS is not inflated by the Azure SDK the uplink benchmark bundles.
  { entry: 'bench/run.ts', out: 'dist/bench/run.js', split: true },
];

const wanted = process.argv.slice(2);
for (const t of targets) {
  if (wanted.length > 0 && !wanted.includes(t.entry)) continue;
  await build({
    entryPoints: [t.entry],
    ...(t.split ? { outdir: dirname(t.out), splitting: true, chunkNames: 'chunk-[hash]' } : { outfile: t.out }),
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    external: EXTERNAL_PACKAGES,
    plugins: t.plugins ?? [],
    // CommonJS dependencies inside an ESM bundle still call require(): give them one.
    banner: {
      js: `${t.banner ?? ''}\nimport { createRequire as __outpostCreateRequire } from 'node:module';\nconst require = __outpostCreateRequire(import.meta.url);`,
    },
    logLevel: 'warning',
  });
  const bytes = statSync(t.out).size;
  console.log(`built ${t.out}: ${bytes} bytes (${(bytes / 2 ** 20).toFixed(2)} MiB)${t.split ? ' entry chunk' : ', the whole gateway; native addons ship beside it'}`);
}
