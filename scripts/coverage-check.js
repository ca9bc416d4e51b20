// tap's own coverage gate is all-or-nothing (100% or off). This is the real threshold: line coverage
// per source folder, read from tap's json-summary report, failing the test command when a folder drops.
// tap's c8 report lists only files some test loaded, so an untested file would never count against the
// gate: every source file under the gated folders is listed here, and one missing from the report counts
// as 0% of its lines (c8 counts every line of a file). Files with no runtime code (only types) are not
// counted: nothing in them can run.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import ts from 'typescript';

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
  const why = err instanceof Error ? err.message : String(err);
  console.error(`coverage-check: cannot read ${summaryPath} (${why}); did tap run with coverage?`);
  process.exit(1);
}

/** @param {string} dir */
function sourceFiles(dir) {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts'))
    .map((e) => relative(process.cwd(), join(e.parentPath, e.name)));
}

/** True when the file compiles to any JavaScript beyond an empty module (type-only files do not). */
/** @param {string} file */
function hasRuntimeCode(file) {
  const js = ts.transpileModule(readFileSync(file, 'utf8'), {
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, removeComments: true },
  }).outputText;
  return js.replace(/export \{\};?/g, '').trim().length > 0;
}

/** Lines as c8 counts them for a file no test loaded: every line of it. */
/** @param {string} file */
function lineCount(file) {
  const text = readFileSync(file, 'utf8');
  return text.split('\n').length - (text.endsWith('\n') ? 1 : 0);
}

const reported = new Map();
for (const [file, data] of Object.entries(summary)) {
  if (file !== 'total') reported.set(relative(process.cwd(), resolve(file)), data.lines);
}

let failed = false;
for (const [prefix, minPct] of Object.entries(LINES_PCT_MIN)) {
  let covered = 0;
  let total = 0;
  const untested = [];
  for (const file of sourceFiles(prefix)) {
    const lines = reported.get(file);
    if (lines) {
      covered += lines.covered;
      total += lines.total;
    } else if (hasRuntimeCode(file)) {
      untested.push(file);
      total += lineCount(file);
    }
  }
  const pct = total === 0 ? 0 : (100 * covered) / total;
  const ok = total > 0 && pct >= minPct;
  console.log(`coverage ${prefix}: ${pct.toFixed(1)}% of ${total} lines (minimum ${minPct}%) ${ok ? 'ok' : 'TOO LOW'}`);
  if (untested.length > 0) console.log(`  no test loads (counted as 0%): ${untested.join(', ')}`);
  if (!ok) failed = true;
}
process.exit(failed ? 1 : 0);
