import ts from 'typescript';
import { isProduction, lineOf, type SourceFile, type Violation } from './source.js';

/** A bound or a quantity with its unit (TigerStyle): the names a reader needs the reason for. */
const LIMIT_NAME = /^[A-Z][A-Z0-9_]*_(MAX|MIN|MS|SECS|SEC|BYTES|DEFAULT|LIMIT|TIMEOUT|INTERVAL|PCT)(_[A-Z]+)?$/;

const hasComment = (text: string, pos: number): boolean => (ts.getLeadingCommentRanges(text, pos) ?? []).length > 0;

/** A comment at the end of the statement's own line. */
function hasTrailingComment(sf: ts.SourceFile, stmt: ts.Statement): boolean {
  const end = stmt.getEnd();
  const lineEnd = sf.text.indexOf('\n', end);
  return sf.text.slice(end, lineEnd < 0 ? undefined : lineEnd).includes('//');
}

/**
 * Every top-level limit in production code says why it has its value. A comment above a run of constants
 * (consecutive lines, no blank line between) covers the run, as one doc comment over `A_MIN` and `A_MAX` does.
 */
export function limitViolations(files: SourceFile[]): Violation[] {
  const out: Violation[] = [];
  for (const { path, sf } of files) {
    if (!isProduction(path)) continue;
    let runCovered = false;
    let previousEndLine = -1;
    for (const stmt of sf.statements) {
      const startLine = lineOf(sf, stmt.getStart(sf));
      const leading = hasComment(sf.text, stmt.getFullStart());
      const inRun = ts.isVariableStatement(stmt) && startLine === previousEndLine + 1 && !leading;
      runCovered = ts.isVariableStatement(stmt) && (leading || (inRun && runCovered));
      previousEndLine = lineOf(sf, stmt.getEnd());
      if (!ts.isVariableStatement(stmt)) continue;
      if (runCovered || hasTrailingComment(sf, stmt)) continue;
      for (const decl of stmt.declarationList.declarations) {
        if (!ts.isIdentifier(decl.name) || !LIMIT_NAME.test(decl.name.text)) continue;
        out.push({
          rule: 'limit-comment',
          key: `${path} ${decl.name.text}`,
          where: `${path}:${startLine}`,
          detail: `${decl.name.text} has no comment saying why it has its value`,
        });
      }
    }
  }
  return out;
}
