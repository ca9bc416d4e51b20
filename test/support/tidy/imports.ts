import { type Checkout, isProduction, type Violation } from './source.js';

interface Edge {
  from: string;
  to: string;
  /** file:line of the import statement, also for an edge between folders. */
  site: string;
  typeOnly: boolean;
}

/** Strongly connected components (Tarjan) with more than one member, or a node importing itself. */
export function cycles(edges: Map<string, Set<string>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const connect = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        connect(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) !== index.get(v)) return;
    const component: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      component.push(w);
    } while (w !== v);
    if (component.length > 1 || edges.get(v)?.has(v)) out.push(component.sort());
  };
  for (const v of edges.keys()) if (!index.has(v)) connect(v);
  return out;
}

function graphOf(pairs: Array<{ from: string; to: string }>): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const { from, to } of pairs) {
    if (!graph.has(from)) graph.set(from, new Set());
    if (!graph.has(to)) graph.set(to, new Set());
    graph.get(from)!.add(to);
  }
  return graph;
}

/**
 * The folder a production module belongs to in the architecture view (firmware/store/, drivers/i2c/). A file
 * at the top of firmware/ or drivers/ (clock.ts, runtime.ts) is its own node: lumping the leaf clock.ts with
 * the root runtime.ts would show a cycle no module has.
 */
export function folderOf(path: string): string {
  const parts = path.split('/');
  return parts.length > 2 ? `${parts[0]}/${parts[1]}/` : path;
}

/** Each edge that closes a cycle counts on its own, so breaking one cycle edge lowers the baseline by one. */
function cycleViolations(rule: string, edges: Edge[]): Violation[] {
  const out: Violation[] = [];
  for (const component of cycles(graphOf(edges))) {
    const inside = new Set(component);
    const seen = new Set<string>();
    for (const e of edges) {
      const key = `${e.from} -> ${e.to}`;
      if (!inside.has(e.from) || !inside.has(e.to) || seen.has(key)) continue;
      seen.add(key);
      out.push({
        rule,
        key,
        where: e.site,
        detail: `imports ${e.to}${e.typeOnly ? ' (type only)' : ''}, in a cycle of ${component.length} modules`,
      });
    }
  }
  return out;
}

function folderCycleViolations(edges: Edge[]): Violation[] {
  // An edge between two top-level files is a file edge, already counted by the import-cycle rule.
  const folderEdges = edges
    .filter((e) => isProduction(e.from) && isProduction(e.to) && folderOf(e.from) !== folderOf(e.to))
    .map((e) => ({ ...e, from: folderOf(e.from), to: folderOf(e.to) }))
    .filter((e) => e.from.endsWith('/') || e.to.endsWith('/'));
  return cycleViolations('folder-cycle', folderEdges).map((v) => ({
    ...v,
    detail: `folder edge ${v.key} closes a cycle between folders`,
  }));
}

export function importViolations(checkout: Checkout): Violation[] {
  const edges: Edge[] = [];
  for (const file of checkout.files) {
    for (const s of file.specifiers) {
      const to = checkout.resolveLocal(file, s.spec);
      if (to) edges.push({ from: file.path, to, site: `${file.path}:${s.line}`, typeOnly: s.typeOnly });
    }
  }
  const testImports = edges
    .filter((e) => isProduction(e.from) && e.to.startsWith('test/'))
    .map((e) => ({
      rule: 'test-import',
      key: `${e.from} -> ${e.to}`,
      where: e.site,
      detail: `production code imports ${e.to}, which is not shipped`,
    }));
  return [
    ...cycleViolations('import-cycle', edges),
    ...cycleViolations(
      'value-import-cycle',
      edges.filter((e) => !e.typeOnly),
    ),
    ...folderCycleViolations(edges),
    ...testImports,
  ];
}
