import t, { type Test } from 'tap';
import { spawnSync } from 'node:child_process';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The coverage gate run on a small tree of its own: a file no test loaded must count, as 0%. */
const SCRIPT = fileURLToPath(new URL('../../scripts/coverage-check.js', import.meta.url));

const tenLines = Array.from({ length: 10 }, (_, i) => `export const v${i} = ${i};`).join('\n') + '\n';
const lines = (total: number, covered: number) => ({
  lines: { total, covered, skipped: 0, pct: (100 * covered) / total },
});

function runGate(t: Test, report: Record<string, unknown>) {
  const dir = t.testdir({
    firmware: {
      store: { 'tested.ts': tenLines, 'untested.ts': tenLines, 'types.ts': 'export interface X { a: number }\n' },
    },
    drivers: { 'd.ts': tenLines },
  });
  mkdirSync(join(dir, '.tap', 'report'), { recursive: true });
  const summary: Record<string, unknown> = { total: lines(1, 1) };
  for (const [file, value] of Object.entries(report)) summary[join(dir, file)] = value;
  summary[join(dir, 'drivers/d.ts')] = lines(10, 10);
  writeFileSync(join(dir, '.tap', 'report', 'coverage-summary.json'), JSON.stringify(summary));
  return spawnSync(process.execPath, [SCRIPT], { cwd: dir, encoding: 'utf8' });
}

t.test('a file no test loaded counts as 0% of its lines and is named; a type-only file does not count', async (t) => {
  const r = runGate(t, { 'firmware/store/tested.ts': lines(10, 10) });
  t.equal(r.status, 1, 'the gate fails');
  t.match(r.stdout, /coverage firmware\/store\/: 50\.0% of 20 lines \(minimum 90%\) TOO LOW/);
  t.match(r.stdout, /no test loads \(counted as 0%\): firmware\/store\/untested\.ts\n/);
  t.notMatch(r.stdout, /types\.ts/, 'the type-only file is not counted');
});

t.test('with every file loaded and covered, the gate passes', async (t) => {
  const r = runGate(t, { 'firmware/store/tested.ts': lines(10, 10), 'firmware/store/untested.ts': lines(10, 9) });
  t.equal(r.status, 0, r.stdout + r.stderr);
  t.match(r.stdout, /coverage firmware\/store\/: 95\.0% of 20 lines \(minimum 90%\) ok/);
});
