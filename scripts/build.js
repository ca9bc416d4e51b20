// Bundles the runtime (and the benchmarks) with esbuild. Native addons and packages that load them
// stay external: they are shipped beside the bundle, built for the target architecture.
import { build } from 'esbuild';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';

/** Packages with native addons or runtime file lookups that must not be inlined. */
export const EXTERNAL_PACKAGES = ['onoff', 'epoll', 'i2c-bus', 'serialport', '@serialport/*', 'better-sqlite3', 'classic-level'];

const targets = [
  // 2 MiB semi-spaces: V8 sizes the young generation from the machine's RAM, and bursts of short-lived
  // records then inflate RSS by tens of MB; capped, a gateway stays near 60-75 MB (npm run bench -- store).
  // Only the young generation is capped: an old-space limit would turn a large backlog into a crash.
  { entry: 'firmware/main.ts', out: 'dist/outpost.js', banner: '#!/usr/bin/env -S node --max-semi-space-size=2' },
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
    // CommonJS dependencies inside an ESM bundle still call require(): give them one.
    banner: {
      js: `${t.banner ?? ''}\nimport { createRequire as __outpostCreateRequire } from 'node:module';\nconst require = __outpostCreateRequire(import.meta.url);`,
    },
    logLevel: 'warning',
  });
  console.log(`built ${t.out} (${statSync(t.out).size} bytes)`);
}
