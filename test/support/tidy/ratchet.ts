import { readFileSync, writeFileSync } from 'node:fs';
import type { Violation } from './source.js';

/** rule → key → how many violations with that key are tolerated (today's count, only ever lowered). */
export type Counts = Record<string, Record<string, number>>;

interface BaselineFile {
  $comment?: string;
  rules: Counts;
}

export function countViolations(violations: Violation[]): Counts {
  const counts: Counts = {};
  for (const v of violations) {
    const rule = (counts[v.rule] ??= {});
    rule[v.key] = (rule[v.key] ?? 0) + 1;
  }
  return counts;
}

export function readBaseline(path: string): Counts {
  return (JSON.parse(readFileSync(path, 'utf8')) as BaselineFile).rules;
}

export interface RatchetResult {
  /** Violations past the baseline, with file:line and the rule: each one fails the test. */
  added: string[];
  /** Baseline entries that are now too high: fixed violations whose allowance must go. */
  lowered: string[];
}

export function compare(violations: Violation[], baseline: Counts): RatchetResult {
  const current = countViolations(violations);
  const added: string[] = [];
  const lowered: string[] = [];
  for (const [rule, keys] of Object.entries(current)) {
    for (const [key, count] of Object.entries(keys)) {
      const allowed = baseline[rule]?.[key] ?? 0;
      if (count <= allowed) continue;
      const sites = violations.filter((v) => v.rule === rule && v.key === key);
      added.push(
        `${rule}: ${key}: ${count} where the baseline allows ${allowed}\n` +
          sites.map((v) => `    ${v.where} ${v.detail}`).join('\n'),
      );
    }
  }
  for (const [rule, keys] of Object.entries(baseline)) {
    for (const [key, allowed] of Object.entries(keys)) {
      const count = current[rule]?.[key] ?? 0;
      if (count < allowed) lowered.push(`${rule}: ${key}: ${allowed} in the baseline, ${count} today`);
    }
  }
  return { added, lowered };
}

/** The baseline with every count brought down to today's, and nothing raised or added: the only edit allowed. */
export function lowerBaseline(path: string, violations: Violation[]): void {
  const file = JSON.parse(readFileSync(path, 'utf8')) as BaselineFile;
  const current = countViolations(violations);
  const rules: Counts = {};
  for (const [rule, keys] of Object.entries(file.rules)) {
    rules[rule] = {};
    for (const [key, allowed] of Object.entries(keys)) {
      const count = Math.min(allowed, current[rule]?.[key] ?? 0);
      if (count > 0) rules[rule]![key] = count;
    }
  }
  writeFileSync(path, `${JSON.stringify({ ...file, rules }, null, 2)}\n`);
}
