import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import t from 'tap';
import { compare, lowerBaseline, readBaseline, tidyViolations } from '../support/tidy/index.js';
import { tempDir } from '../support/tmp.js';

// The rules of tidy.test.ts against a small checkout with one violation of each kind: a rule that finds
// nothing would let the real baseline pass whatever the code does.
function write(root: string, path: string, text: string): void {
  mkdirSync(dirname(join(root, path)), { recursive: true });
  writeFileSync(join(root, path), text);
}

const longBody = Array.from({ length: 70 }, (_, i) => `  const v${i} = ${i};`).join('\n');
const deepBody = 'if (a) { for (;;) { while (a) { switch (a) { default: if (a) return; } } } }';

function fixture(root: string): void {
  write(
    root,
    'package.json',
    JSON.stringify({
      dependencies: { 'runtime-dep': '1', 'test-only-dep': '1' },
      devDependencies: { 'dev-dep': '1', 'unused-dev': '1', 'test-dev': '1' },
      tap: { exclude: ['test/support/**'] },
    }),
  );
  write(
    root,
    'firmware/a.ts',
    [
      "import 'runtime-dep';",
      "import 'dev-dep';",
      "import { helper } from '../test/helper.js';",
      "import type { B } from './b.js';",
      `export const wide = '${'x'.repeat(110)}';`,
      `export function long(): void {\n${longBody}\n}`,
      `export function deep(a: boolean): void { ${deepBody} }`,
      'const WAIT_MS = 5;',
      '/** Why both bounds are what they are. */',
      'const RANGE_MIN = 1;',
      'const RANGE_MAX = 2;',
      '',
      '// Named limits end in their unit; a trailing comment counts too.',
      'export const A_BYTES = WAIT_MS + RANGE_MIN + RANGE_MAX; // why',
      'export type A = B;',
      'helper();',
    ].join('\n'),
  );
  write(root, 'firmware/b.ts', "import { wide } from './a.js';\nexport type B = typeof wide;\n");
  write(root, 'firmware/x/one.ts', "import type { Two } from '../y/two.js';\nexport type One = Two;\n");
  write(root, 'firmware/y/two.ts', "import '../x/one.js';\nexport type Two = number;\n");
  write(
    root,
    'test/helper.ts',
    "import 'test-only-dep';\nimport 'test-dev';\nimport 'undeclared-pkg';\n" + 'export function helper(): void {}\n',
  );
  write(root, 'test/support/kept.ts', 'export const kept = 1;\n');
  write(root, 'test/a.test.ts', "import '../firmware/b.js';\n");
}

t.test('each rule finds its violation, with file:line, and nothing else', async (t) => {
  const root = tempDir(t, 'outpost-tidy-');
  fixture(root);
  const found = tidyViolations(root)
    .map((v) => `${v.rule} | ${v.key} | ${v.where}`)
    .sort();
  t.same(found, [
    'dependency-group | dev-dep | firmware/a.ts:2',
    'dependency-group | test-only-dep | test/helper.ts:1',
    'dependency-group | undeclared-pkg | test/helper.ts:3',
    'dependency-group | unused-dev | package.json',
    'folder-cycle | firmware/x/ -> firmware/y/ | firmware/x/one.ts:1',
    'folder-cycle | firmware/y/ -> firmware/x/ | firmware/y/two.ts:1',
    'function-lines | firmware/a.ts long | firmware/a.ts:6',
    'import-cycle | firmware/a.ts -> firmware/b.ts | firmware/a.ts:4',
    'import-cycle | firmware/b.ts -> firmware/a.ts | firmware/b.ts:1',
    'import-cycle | firmware/x/one.ts -> firmware/y/two.ts | firmware/x/one.ts:1',
    'import-cycle | firmware/y/two.ts -> firmware/x/one.ts | firmware/y/two.ts:1',
    'limit-comment | firmware/a.ts WAIT_MS | firmware/a.ts:79',
    'line-columns | firmware/a.ts | firmware/a.ts:5',
    'nesting | firmware/a.ts deep | firmware/a.ts:78',
    'tap-runs-helper | test/helper.ts | test/helper.ts:1',
    'test-import | firmware/a.ts -> test/helper.ts | firmware/a.ts:3',
  ]);
});

t.test('a value-only cycle is its own rule: type-only imports do not make one', async (t) => {
  const root = tempDir(t, 'outpost-tidy-');
  write(root, 'package.json', '{}');
  write(root, 'firmware/p.ts', "import { q } from './q.js';\nexport const p = q;\n");
  write(root, 'firmware/q.ts', "import { p } from './p.js';\nexport const q = () => p;\n");
  const rules = tidyViolations(root)
    .map((v) => `${v.rule} | ${v.key}`)
    .sort();
  t.same(rules, [
    'import-cycle | firmware/p.ts -> firmware/q.ts',
    'import-cycle | firmware/q.ts -> firmware/p.ts',
    'value-import-cycle | firmware/p.ts -> firmware/q.ts',
    'value-import-cycle | firmware/q.ts -> firmware/p.ts',
  ]);
});

t.test('the ratchet: a new violation fails with its place, a fixed one must leave the baseline', async (t) => {
  const root = tempDir(t, 'outpost-tidy-');
  fixture(root);
  const violations = tidyViolations(root);
  const baselinePath = join(root, 'baseline.json');
  const counts: Record<string, Record<string, number>> = {};
  for (const v of violations) (counts[v.rule] ??= {})[v.key] = 1;
  counts['line-columns']!['firmware/a.ts'] = 0;
  counts['nesting']!['firmware/old.ts gone'] = 1;
  writeFileSync(baselinePath, JSON.stringify({ rules: counts }));

  const { added, lowered } = compare(violations, readBaseline(baselinePath));
  t.equal(added.length, 1);
  t.match(added[0], /^line-columns: firmware\/a\.ts: 1 where the baseline allows 0\n {4}firmware\/a\.ts:5 \d+ columns/);
  t.same(lowered, ['nesting: firmware/old.ts gone: 1 in the baseline, 0 today']);

  lowerBaseline(baselinePath, violations);
  const lowered2 = JSON.parse(readFileSync(baselinePath, 'utf8')).rules;
  t.equal(lowered2['line-columns']['firmware/a.ts'], undefined, 'lowering never raises an allowance');
  t.equal(lowered2['nesting']['firmware/old.ts gone'], undefined, 'a fixed violation leaves the baseline');
  t.same(compare(violations, readBaseline(baselinePath)).lowered, []);
});
