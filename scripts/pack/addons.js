// Collects the bundle's external packages (native addons and what they require) from node_modules and
// compiles the addons for one target with node-gyp and a cross compiler.
import { execFileSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  closeSync,
  rmSync,
  statSync,
} from 'node:fs';
import { basename, dirname, join, relative, sep } from 'node:path';
import { COMPILED_ADDONS, PREBUILD_DIRS } from './targets.js';

/** Directories never shipped: host builds (they would shadow the target's) and package test/example trees. */
const SKIPPED_DIRS = new Set(['build', 'test', 'example', 'integration-test', 'doc', '.github']);

/** @param {string} file */
function readJson(file) {
  return JSON.parse(readFileSync(file, 'utf8'));
}

/** Node's resolution: the nearest node_modules/<name> from `fromDir` up to the repository's node_modules. */
/**
 * @param {string} fromDir
 * @param {string} name
 * @param {string} rootModules
 * @returns {string | null}
 */
function resolvePackage(fromDir, name, rootModules) {
  for (let dir = fromDir; dir.startsWith(rootModules); dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dir === rootModules) break;
  }
  const top = join(rootModules, name);
  return existsSync(join(top, 'package.json')) ? top : null;
}

/** Top-level package folders needed by `roots` and everything they depend on at run time. */
/**
 * @param {string} repo
 * @param {string[]} roots
 */
export function runtimeClosure(repo, roots) {
  const rootModules = join(repo, 'node_modules');
  /** @type {Set<string>} */
  const seen = new Set();
  const queue = roots.map((name) => resolvePackage(rootModules, name, rootModules));
  while (queue.length > 0) {
    const dir = queue.pop();
    if (dir === undefined || dir === null || seen.has(dir)) continue;
    seen.add(dir);
    const pkg = readJson(join(dir, 'package.json'));
    for (const dep of Object.keys({ ...pkg.dependencies, ...pkg.optionalDependencies }))
      queue.push(resolvePackage(dir, dep, rootModules));
  }
  // Nested folders travel inside their parent's copy; only the top-level ones are copied by name.
  return [...seen]
    .map((dir) => relative(rootModules, dir))
    .filter((rel) => !rel.includes(`${sep}node_modules${sep}`))
    .sort();
}

/** Copies the packages into `modulesDir`, without host builds and without other targets' prebuilds. */
/**
 * @param {string} repo
 * @param {string[]} packages
 * @param {string} modulesDir
 * @param {import('./targets.js').Target} target
 */
export function copyPackages(repo, packages, modulesDir, target) {
  for (const rel of packages) {
    cpSync(join(repo, 'node_modules', rel), join(modulesDir, rel), {
      recursive: true,
      dereference: true,
      filter: (src) => {
        const name = basename(src);
        if (SKIPPED_DIRS.has(name) && statSync(src).isDirectory()) return false;
        const parent = basename(dirname(src));
        return !(parent === 'prebuilds' && name !== PREBUILD_DIRS[target]);
      },
    });
  }
}

/** node-gyp as npm ships it: `npm run` tells scripts where (npm_config_node_gyp, npm_execpath). */
function nodeGypPath() {
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp))
    return process.env.npm_config_node_gyp;
  const fromNpm =
    process.env.npm_execpath && join(dirname(process.env.npm_execpath), '../node_modules/node-gyp/bin/node-gyp.js');
  if (fromNpm && existsSync(fromNpm)) return fromNpm;
  // The npm that came with this node (official tarballs and Debian's nodejs package both lay it out so).
  const beside = join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js');
  if (existsSync(beside)) return beside;
  throw new Error('release: node-gyp not found; run this through `npm run release`');
}

/** Compiles each of COMPILED_ADDONS in place for the target, against the headers of the Node it ships. */
/**
 * @param {string} modulesDir
 * @param {import('./targets.js').Target} target
 * @param {import('./targets.js').TargetSpec} spec
 * @param {string} nodeDir
 */
export function buildAddons(modulesDir, target, spec, nodeDir) {
  const tool = (/** @type {string} */ name) => `${spec.toolPrefix}${name}`;
  const env = {
    ...process.env,
    CC: tool('gcc'),
    CXX: tool('g++'),
    LINK: tool('g++'),
    AR: tool('ar'),
    npm_config_arch: spec.gypArch,
    npm_config_nodedir: nodeDir,
  };
  if (spec.toolPrefix) {
    try {
      execFileSync(tool('g++'), ['--version'], { stdio: 'ignore' });
    } catch {
      throw new Error(
        `release ${target}: ${tool('g++')} is missing; scripts/install-release-deps.sh installs Debian's cross compilers`,
      );
    }
  }
  const gyp = nodeGypPath();
  for (const addon of COMPILED_ADDONS) {
    const dir = join(modulesDir, addon);
    execFileSync(
      process.execPath,
      [gyp, 'rebuild', '--release', '--loglevel=warn', `--arch=${spec.gypArch}`, `--nodedir=${nodeDir}`],
      { cwd: dir, env, stdio: ['ignore', 'ignore', 'inherit'] },
    );
    // Only the addon itself is shipped: object files and makefiles are megabytes of build residue.
    for (const entry of readdirSync(join(dir, 'build')))
      if (entry !== 'Release') rmSync(join(dir, 'build', entry), { recursive: true });
    for (const entry of readdirSync(join(dir, 'build/Release')))
      if (!entry.endsWith('.node')) rmSync(join(dir, 'build/Release', entry), { recursive: true });
  }
}

/** Every .node file under `dir`, with its ELF machine; the release refuses to pack a file for another arch. */
/**
 * @param {string} dir
 * @param {import('./targets.js').Target} target
 * @param {import('./targets.js').TargetSpec} spec
 */
export function checkElfMachines(dir, target, spec) {
  /** @type {string[]} */
  const found = [];
  const walk = (/** @type {string} */ d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.node')) found.push(path);
    }
  };
  walk(dir);
  for (const file of found) {
    const header = Buffer.alloc(20);
    const fd = openSync(file, 'r');
    readSync(fd, header, 0, 20, 0);
    closeSync(fd);
    const machine = header.readUInt16LE(18);
    // musl prebuilds are for Alpine; they are the right arch but never loaded on Raspberry Pi OS.
    if (machine !== spec.elfMachine)
      throw new Error(
        `release ${target}: ${relative(dir, file)} is built for ELF machine 0x${machine.toString(16)}, expected 0x${spec.elfMachine.toString(16)}`,
      );
  }
  return found.map((f) => relative(dir, f));
}
