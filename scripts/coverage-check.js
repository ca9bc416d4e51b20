// tap's own coverage gate is all-or-nothing (100% or off). This is the real threshold: line coverage
// per source folder, read from tap's json-summary report, failing the test command when a folder drops.
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

/** Minimum line coverage, percent, per folder prefix. */
const LINES_PCT_MIN = {
  'firmware/store/': 90,
  'firmware/': 90,
  'drivers/': 85,
};

const summaryPath = '.tap/report/coverage-summary.json';
let summary;
try {
  summary = JSON.parse(readFileSync(summaryPath, 'utf8'));
} catch (err) {
  console.error(`coverage-check: cannot read ${summaryPath} (${err.message}); did tap run with coverage?`);
  process.exit(1);
}

let failed = false;
for (const [prefix, minPct] of Object.entries(LINES_PCT_MIN)) {
  let covered = 0;
  let total = 0;
  for (const [file, data] of Object.entries(summary)) {
    if (file === 'total') continue;
    if (!relative(process.cwd(), file).startsWith(prefix)) continue;
    covered += data.lines.covered;
    total += data.lines.total;
  }
  const pct = total === 0 ? 0 : (100 * covered) / total;
  const ok = total > 0 && pct >= minPct;
  console.log(`coverage ${prefix}: ${pct.toFixed(1)}% of ${total} lines (minimum ${minPct}%) ${ok ? 'ok' : 'TOO LOW'}`);
  if (!ok) failed = true;
}
process.exit(failed ? 1 : 0);
