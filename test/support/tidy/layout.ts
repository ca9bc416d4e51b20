import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SourceFile, Violation } from './source.js';

/** What tap takes for a test file: everything under test/ (tap's default) that is code and not excluded. */
const TEST_FILE = /\.test\.(ts|mts|cts|js|mjs|cjs)$/;

/**
 * A helper under test/ that is not a test and not excluded in package.json's `tap.exclude` is still run by
 * tap as one: it passes with no assertions, counts as a test and can start processes at import.
 */
export function layoutViolations(root: string, files: SourceFile[]): Violation[] {
  const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { tap?: { exclude?: string[] } };
  // Only `folder/**` patterns and plain file paths are used there; anything subtler would need tap's own
  // glob matching.
  const patterns = pkg.tap?.exclude ?? [];
  const excluded = patterns.filter((g) => g.endsWith('/**')).map((g) => g.slice(0, -2));
  const excludedFiles = new Set(patterns.filter((g) => !/[*?[{]/.test(g)));
  return files
    .filter((f) => f.path.startsWith('test/') && !TEST_FILE.test(f.path) && !f.path.endsWith('.d.ts'))
    .filter((f) => !excludedFiles.has(f.path) && !excluded.some((prefix) => f.path.startsWith(prefix)))
    .map((f) => ({
      rule: 'tap-runs-helper',
      key: f.path,
      where: `${f.path}:1`,
      detail: 'a helper tap runs as a test file: move it to test/support (or exclude it in package.json "tap")',
    }));
}
