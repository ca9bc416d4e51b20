import ts from 'typescript';
import { lineOf, type SourceFile, type Violation } from './source.js';

/** STYLE.md's house limits: a function a reader holds in their head, a line that fits a split editor. */
export const FUNCTION_LINES_MAX = 70;
export const LINE_COLUMNS_MAX = 120;
/** Control-flow nesting (if/loop/switch/try) inside one function; an else-if does not nest deeper. */
export const NESTING_DEPTH_MAX = 4;

const FUNCTION_KINDS = new Set([
  ts.SyntaxKind.FunctionDeclaration,
  ts.SyntaxKind.MethodDeclaration,
  ts.SyntaxKind.Constructor,
  ts.SyntaxKind.GetAccessor,
  ts.SyntaxKind.SetAccessor,
  ts.SyntaxKind.ArrowFunction,
  ts.SyntaxKind.FunctionExpression,
]);
const NESTING_KINDS = new Set([
  ts.SyntaxKind.IfStatement,
  ts.SyntaxKind.ForStatement,
  ts.SyntaxKind.ForInStatement,
  ts.SyntaxKind.ForOfStatement,
  ts.SyntaxKind.WhileStatement,
  ts.SyntaxKind.DoStatement,
  ts.SyntaxKind.SwitchStatement,
  ts.SyntaxKind.TryStatement,
]);
/** Enough of a test title to tell two callbacks of one file apart in the baseline. */
const TITLE_CHARS_MAX = 60;

/** A name that survives edits elsewhere in the file: declared name, or the call and test title it is given to. */
function functionName(node: ts.FunctionLikeDeclaration, sf: ts.SourceFile): string {
  if (node.name && ts.isIdentifier(node.name)) return node.name.text;
  if (node.kind === ts.SyntaxKind.Constructor) return 'constructor';
  const parent = node.parent;
  if (
    (ts.isVariableDeclaration(parent) || ts.isPropertyAssignment(parent) || ts.isPropertyDeclaration(parent)) &&
    ts.isIdentifier(parent.name)
  )
    return parent.name.text;
  if (ts.isCallExpression(parent)) {
    const callee = parent.expression.getText(sf);
    const title = parent.arguments[0];
    const label = title && ts.isStringLiteralLike(title) ? ` '${title.text.slice(0, TITLE_CHARS_MAX)}'` : '';
    return `<callback of ${callee.slice(0, 40)}${label}>`;
  }
  return '<anonymous>';
}

interface FunctionSize {
  name: string;
  line: number;
  lines: number;
  depth: number;
}

function measureFunctions(sf: ts.SourceFile): FunctionSize[] {
  const out: FunctionSize[] = [];
  const visit = (node: ts.Node, owner: FunctionSize | null, depth: number): void => {
    if (FUNCTION_KINDS.has(node.kind) && (node as ts.FunctionLikeDeclaration).body) {
      const start = lineOf(sf, node.getStart(sf));
      const size = {
        name: functionName(node as ts.FunctionLikeDeclaration, sf),
        line: start,
        depth: 0,
        lines: lineOf(sf, node.getEnd()) - start + 1,
      };
      out.push(size);
      ts.forEachChild(node, (child) => visit(child, size, 0));
      return;
    }
    let inner = depth;
    if (NESTING_KINDS.has(node.kind)) {
      const elseIf = ts.isIfStatement(node) && ts.isIfStatement(node.parent) && node.parent.elseStatement === node;
      if (!elseIf) inner = depth + 1;
      if (owner && inner > owner.depth) owner.depth = inner;
    }
    ts.forEachChild(node, (child) => visit(child, owner, inner));
  };
  visit(sf, null, 0);
  return out;
}

export function sizeViolations(files: SourceFile[]): Violation[] {
  const out: Violation[] = [];
  for (const { path, sf } of files) {
    for (const fn of measureFunctions(sf)) {
      const where = `${path}:${fn.line}`;
      if (fn.lines > FUNCTION_LINES_MAX) {
        out.push({
          rule: 'function-lines',
          key: `${path} ${fn.name}`,
          where,
          detail: `${fn.name} is ${fn.lines} lines (limit ${FUNCTION_LINES_MAX})`,
        });
      }
      if (fn.depth > NESTING_DEPTH_MAX) {
        out.push({
          rule: 'nesting',
          key: `${path} ${fn.name}`,
          where,
          detail: `${fn.name} nests ${fn.depth} deep (limit ${NESTING_DEPTH_MAX})`,
        });
      }
    }
    sf.text.split('\n').forEach((text, i) => {
      const columns = [...text].length;
      if (columns > LINE_COLUMNS_MAX) {
        out.push({
          rule: 'line-columns',
          key: path,
          where: `${path}:${i + 1}`,
          detail: `${columns} columns (limit ${LINE_COLUMNS_MAX})`,
        });
      }
    });
  }
  return out;
}
