import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { type Checkout, isProduction, type Violation } from './source.js';

interface PackageJson {
  scripts?: Record<string, string>;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const packageOf = (spec: string): string =>
  spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
const isBuiltin = (spec: string): boolean => spec.startsWith('node:') || builtinModules.includes(packageOf(spec));

/** The commands a package installs, to see whether package.json's scripts run it (tap, tsc). */
function binsOf(root: string, name: string): string[] {
  const manifest = join(root, 'node_modules', name, 'package.json');
  if (!existsSync(manifest)) return [];
  const bin = (JSON.parse(readFileSync(manifest, 'utf8')) as { bin?: string | Record<string, string> }).bin;
  if (!bin) return [];
  return typeof bin === 'string' ? [name.split('/').pop()!] : Object.keys(bin);
}

/**
 * Each dependency in the group its users need: runtime ones (dependencies, optionalDependencies) are what a
 * release installs, so production code must import them; dev ones must never be imported by production code,
 * since a release does not have them; every package imported must be declared (a transitive one can vanish
 * with any update of its parent).
 */
export function dependencyViolations(checkout: Checkout): Violation[] {
  const pkg = JSON.parse(readFileSync(join(checkout.root, 'package.json'), 'utf8')) as PackageJson;
  const runtime = { ...pkg.dependencies, ...pkg.optionalDependencies };
  const dev = pkg.devDependencies ?? {};
  const users = new Map<string, string[]>();
  for (const file of checkout.files) {
    for (const s of file.specifiers) {
      if (s.spec.startsWith('.') || s.spec.startsWith('/') || isBuiltin(s.spec)) continue;
      const name = packageOf(s.spec);
      users.set(name, [...(users.get(name) ?? []), `${file.path}:${s.line}`]);
    }
  }
  const out: Violation[] = [];
  const add = (name: string, where: string, detail: string): void => {
    out.push({ rule: 'dependency-group', key: name, where, detail });
  };
  const scripts = Object.values(pkg.scripts ?? {}).join('\n');
  for (const name of Object.keys(runtime)) {
    const sites = users.get(name) ?? [];
    if (sites.some((s) => isProduction(s))) continue;
    if (sites.length) add(name, sites[0]!, `runtime dependency ${name} is only imported by code that does not ship`);
    else add(name, 'package.json', `runtime dependency ${name} is imported by nobody`);
  }
  for (const name of Object.keys(dev)) {
    const sites = users.get(name) ?? [];
    const shipped = sites.find((s) => isProduction(s));
    if (shipped) add(name, shipped, `dev dependency ${name} is imported by production code, which a release lacks`);
    const typesOf = name.startsWith('@types/') ? name.slice('@types/'.length) : null;
    const used =
      sites.length > 0 ||
      binsOf(checkout.root, name).some((b) => new RegExp(`\\b${b}\\b`).test(scripts)) ||
      (typesOf !== null && (typesOf === 'node' || users.has(typesOf)));
    if (!used) add(name, 'package.json', `dev dependency ${name} is imported by nobody and run by no script`);
  }
  for (const [name, sites] of users) {
    if (!(name in runtime) && !(name in dev)) add(name, sites[0]!, `${name} is imported but not in package.json`);
  }
  return out;
}
