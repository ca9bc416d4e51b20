import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import ts from 'typescript';

/** One broken house rule: `key` is what the baseline counts (stable when lines move), `where` is file:line. */
export interface Violation {
  rule: string;
  key: string;
  where: string;
  detail: string;
}

export interface ModuleSpecifier {
  spec: string;
  typeOnly: boolean;
  line: number;
}

export interface SourceFile {
  /** Path from the repository root with forward slashes: what the baseline and messages name. */
  path: string;
  sf: ts.SourceFile;
  specifiers: ModuleSpecifier[];
}

/** The folders the house rules cover; everything else in the checkout is data, docs or installed packages. */
export const SOURCE_ROOTS = ['firmware', 'drivers', 'bench', 'scripts', 'test'];
const CODE_FILE = /\.(ts|mts|cts|js|mjs|cjs)$/;
/** Build output and tool state that can sit inside a source root in a working checkout. */
const SKIPPED_DIRS = new Set(['node_modules', 'dist', 'release', '.tap', 'coverage', 'data']);

/** Production code: what ships in the bundle. The rest (test, bench, scripts) is development-only. */
export const isProduction = (path: string): boolean => path.startsWith('firmware/') || path.startsWith('drivers/');

function walk(dir: string, out: string[]): string[] {
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir).sort()) {
    if (SKIPPED_DIRS.has(name)) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) walk(path, out);
    else if (CODE_FILE.test(name)) out.push(path);
  }
  return out;
}

export const lineOf = (sf: ts.SourceFile, pos: number): number => sf.getLineAndCharacterOfPosition(pos).line + 1;

/** Every module a file names: static imports and re-exports, `import()`, `require()`, `import('x').T` types. */
function collectSpecifiers(sf: ts.SourceFile): ModuleSpecifier[] {
  const out: ModuleSpecifier[] = [];
  // `const name = 'serialport'; await import(name)` keeps a native package out of the bundler's reach; the
  // string is remembered so that import still counts.
  const strings = new Map<string, string>();
  const remember = (node: ts.Node): void => {
    if (
      ts.isVariableDeclaration(node) &&
      ts.isIdentifier(node.name) &&
      node.initializer &&
      ts.isStringLiteralLike(node.initializer)
    )
      strings.set(node.name.text, node.initializer.text);
    ts.forEachChild(node, remember);
  };
  remember(sf);
  const add = (spec: string, typeOnly: boolean, node: ts.Node): void => {
    out.push({ spec, typeOnly, line: lineOf(sf, node.getStart(sf)) });
  };
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    ) {
      add(node.moduleSpecifier.text, isTypeOnly(node), node);
    } else if (ts.isCallExpression(node) && node.arguments.length === 1) {
      const arg = node.arguments[0]!;
      const callee = node.expression;
      const loads =
        callee.kind === ts.SyntaxKind.ImportKeyword ||
        (ts.isIdentifier(callee) && callee.text === 'require') ||
        (ts.isPropertyAccessExpression(callee) &&
          callee.name.text === 'resolve' &&
          ts.isIdentifier(callee.expression) &&
          callee.expression.text === 'require');
      if (loads && ts.isStringLiteralLike(arg)) add(arg.text, false, node);
      else if (loads && ts.isIdentifier(arg) && strings.has(arg.text)) add(strings.get(arg.text)!, false, node);
    } else if (
      ts.isImportTypeNode(node) &&
      ts.isLiteralTypeNode(node.argument) &&
      ts.isStringLiteral(node.argument.literal)
    ) {
      add(node.argument.literal.text, true, node);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** True when the compiler erases the statement: it creates no load-order dependency, only a reading one. */
function isTypeOnly(node: ts.ImportDeclaration | ts.ExportDeclaration): boolean {
  if (ts.isExportDeclaration(node)) {
    if (node.isTypeOnly) return true;
    const clause = node.exportClause;
    return (
      !!clause && ts.isNamedExports(clause) && clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly)
    );
  }
  const clause = node.importClause;
  if (!clause) return false;
  if (clause.isTypeOnly) return true;
  if (clause.name) return false;
  const bindings = clause.namedBindings;
  if (!bindings || ts.isNamespaceImport(bindings)) return false;
  return bindings.elements.length > 0 && bindings.elements.every((e) => e.isTypeOnly);
}

export interface Checkout {
  root: string;
  files: SourceFile[];
  /** The local file a relative specifier names (NodeNext: `./x.js` is `./x.ts` on disk), or null. */
  resolveLocal(from: SourceFile, spec: string): string | null;
}

/**
 * Parses every source file into one program. Only syntax is needed (sizes, imports, comments), so there is
 * no module resolution, no lib and no type-check: the whole checkout parses in well under a second.
 */
export function loadCheckout(root: string): Checkout {
  const paths = SOURCE_ROOTS.flatMap((r) => walk(join(root, r), []));
  const options = { allowJs: true, noResolve: true, noLib: true, types: [], target: ts.ScriptTarget.ES2022 };
  // Parent links let a rule ask where a function sits (the call it is given to, the variable it names).
  const host = ts.createCompilerHost(options, true);
  const program = ts.createProgram({ rootNames: paths, options, host });
  const rel = (p: string): string => relative(root, p).split(sep).join('/');
  const files = paths.map((p) => {
    const sf = program.getSourceFile(p);
    if (!sf) throw new Error(`tidy: ${rel(p)} did not parse`);
    return { path: rel(p), sf, specifiers: collectSpecifiers(sf) };
  });
  const known = new Set(files.map((f) => f.path));
  const resolveLocal = (from: SourceFile, spec: string): string | null => {
    if (!spec.startsWith('.')) return null;
    const base = rel(resolve(root, dirname(from.path), spec));
    const candidates = [
      base,
      base.replace(/\.js$/, '.ts'),
      base.replace(/\.mjs$/, '.mts'),
      `${base}.ts`,
      `${base}/index.ts`,
    ];
    return candidates.find((c) => known.has(c)) ?? null;
  };
  return { root, files, resolveLocal };
}
