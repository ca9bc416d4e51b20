// Benchmark entry point: `npm run bench -- [name]`. With no name every known benchmark runs in turn.
// The same bundle doubles as the worker: `<bundle> --bench-child <name> <role> <json>` runs one role of
// one benchmark in its own process (see harness.ts).
import { CHILD_FLAG, serveChild, type BenchModule } from './harness.js';

/** Benchmarks by name. Static imports inside the loaders keep each one in the esbuild bundle. */
const BENCHMARKS: Record<string, () => Promise<BenchModule>> = {
  store: async () => (await import('./store.js')).default,
  uplink: async () => (await import('./uplink.js')).default,
  powercut: async () => (await import('./powercut.js')).default,
  ship: async () => (await import('./ship.js')).default,
  bridge: async () => (await import('./bridge.js')).default,
  hostile: async () => (await import('./hostile.js')).default,
  fleet: async () => (await import('./fleet.js')).default,
  transparent: async () => (await import('./transparent.js')).default,
  ota: async () => (await import('./ota.js')).default,
  'vm-powercut': async () => (await import('./vm-powercut.js')).default,
  'vm-arm64': async () => (await import('./vm-arm64.js')).default,
};

async function main(argv: string[]): Promise<void> {
  if (argv[0] === CHILD_FLAG) return serveChild(BENCHMARKS, argv.slice(1));
  const known = Object.keys(BENCHMARKS);
  const wanted = argv.length > 0 ? argv : known;
  const unknown = wanted.filter((name) => !known.includes(name));
  if (unknown.length > 0) {
    console.error(`unknown benchmark ${unknown.map((n) => `"${n}"`).join(', ')}; known: ${known.join(', ')}`);
    process.exit(2);
  }
  for (const name of wanted) await (await BENCHMARKS[name]!()).run();
}

await main(process.argv.slice(2));
