// Bundles the runtime (and the benchmarks) with esbuild. Native addons and packages that load them
// stay external: they are shipped beside the bundle, built for the target architecture.
import { build } from 'esbuild';
import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EXTERNAL_PACKAGES } from './externals.js';
import { buildPageAssets } from './page-assets.js';

/** V8 flags every launcher passes; see the file for why. */
const NODE_FLAGS = JSON.parse(readFileSync(new URL('./node-flags.json', import.meta.url), 'utf8')).flags;

const ZLIB_COMPAT = resolve(dirname(fileURLToPath(import.meta.url)), '../firmware/ops/zlib-compat.ts');

/**
 * Sends the gateway's zlib imports through firmware/ops/zlib-compat.ts, which supplies zlib.crc32 on Node
 * before 20.15: the armv7 release ships Node 20.11.0, the newest Node 20 published for that target.
 */
/** @type {import('esbuild').Plugin} */
const zlibCompat = {
  name: 'zlib-compat',
  setup(b) {
    b.onResolve({ filter: /^(node:)?zlib$/ }, (args) =>
      args.importer === ZLIB_COMPAT ? undefined : { path: ZLIB_COMPAT },
    );
  },
};

/**
 * azure-iot-device loads @azure/storage-blob only inside uploadToBlob (IoT Hub file upload), which outpost
 * never calls; bundled, it and what it pulls in (@azure/core-http, node-fetch's URL tables, tough-cookie,
 * xml2js, mime-db, ...) are about 2.3 MB of the bundle, and V8 keeps the bundle's whole source in the heap.
 * The stub fails that one call with a clear message instead.
 */
const NO_BLOB_UPLOAD = `throw new Error('outpost does not ship @azure/storage-blob: IoT Hub file upload (uploadToBlob) is not supported');`;
/** @type {import('esbuild').Plugin} */
const omitBlobUpload = {
  name: 'omit-blob-upload',
  setup(b) {
    b.onResolve({ filter: /^@azure\/storage-blob$/ }, () => ({ path: 'storage-blob', namespace: 'omitted' }));
    b.onLoad({ filter: /.*/, namespace: 'omitted' }, () => ({ contents: NO_BLOB_UPLOAD, loader: 'js' }));
  },
};

const targets = [
  // The shebang carries the same V8 flags as every other launcher (scripts/node-flags.json).
  // The technician page's assets go beside the bundle (dist/page/), where firmware/page/assets.ts looks.
  {
    entry: 'firmware/main.ts',
    out: 'dist/outpost.js',
    banner: `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`,
    plugins: [zlibCompat, omitBlobUpload],
    assets: 'dist/page',
  },
  // Split: each benchmark (and its peers' code) is a chunk loaded only by the run that needs it, so a
  // store child's RSS is not inflated by the Azure SDK the uplink benchmark bundles. The release's plugins:
  // a gateway role runs the code that ships, not the storage-blob tree the release leaves out.
  { entry: 'bench/run.ts', out: 'dist/bench/run.js', split: true, plugins: [zlibCompat, omitBlobUpload] },
];

/**
 * esbuild escapes non-ASCII characters in code (charset "ascii") but keeps the doc comments it carries over
 * as they are, and a single "≤" in one of them makes V8 hold the whole bundle's source as a two-byte string:
 * 10.4 MB of heap for the gateway's 5.2 MB, for the life of the process (seen in a heap snapshot of an idle
 * gateway). Escaping what is left keeps the source one byte per character; in a comment the escape is inert.
 * Line numbers are unchanged, so stack traces and the source map still line up.
 */
/** @param {string} file */
function asciiOnly(file) {
  const text = readFileSync(file, 'utf8');
  // eslint-disable-next-line no-control-regex
  const ascii = text.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
  if (ascii !== text) writeFileSync(file, ascii);
}

const wanted = process.argv.slice(2);
for (const t of targets) {
  if (wanted.length > 0 && !wanted.includes(t.entry)) continue;
  // Chunk names are content hashes: without a clean folder every build leaves the last one's chunks behind.
  if (t.split) rmSync(dirname(t.out), { recursive: true, force: true });
  const result = await build({
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
    metafile: true,
  });
  for (const out of Object.keys(result.metafile.outputs)) if (out.endsWith('.js')) asciiOnly(out);
  if (t.assets) await buildPageAssets(t.assets);
  const bytes = statSync(t.out).size;
  console.log(
    `built ${t.out}: ${bytes} bytes (${(bytes / 2 ** 20).toFixed(2)} MiB)${t.split ? ' entry chunk' : ', the whole gateway; native addons ship beside it'}`,
  );
}
