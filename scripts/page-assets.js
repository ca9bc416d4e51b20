// Builds the technician page's static assets (firmware/page): app.js with uPlot bundled in (no CDN: a site
// may have no internet), the page's stylesheet and uPlot's. Used by scripts/build.js and by the page tests.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

/** @param {string} outDir */
export async function buildPageAssets(outDir) {
  mkdirSync(outDir, { recursive: true });
  await build({
    entryPoints: [join(ROOT, 'firmware/page/browser/app.ts')],
    outfile: join(outDir, 'app.js'),
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2020',
    minify: true,
    logLevel: 'warning',
  });
  copyFileSync(join(ROOT, 'firmware/page/browser/page.css'), join(outDir, 'page.css'));
  const uplotCss = join(dirname(createRequire(import.meta.url).resolve('uplot')), 'uPlot.min.css');
  copyFileSync(uplotCss, join(outDir, 'uPlot.min.css'));
}
