import { build, type Metafile } from 'esbuild';
import t from 'tap';
import { EXTERNAL_PACKAGES } from '../../scripts/externals.js';

// A gateway loads the code of an optional part only when board.json configures it: the Azure SDK and DPS
// (azure uplink), edge mode, the sim cloud's embedded broker. Bundled, a module reached only through
// import() is initialised only when that import runs, so what a plain mqtt gateway pays for at start is the
// entry's static import graph. Split the way scripts/build.js splits the benchmarks, that graph is the
// entry chunk and the chunks it imports statically; this checks none of the optional parts is among them.

/** Bundled inputs the entry's static import graph holds, as esbuild names them (paths, node_modules/...). */
async function staticInputs(entry: string): Promise<string[]> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    write: false,
    splitting: true,
    outdir: 'lazy-load-check',
    external: EXTERNAL_PACKAGES,
    metafile: true,
    logLevel: 'error',
  });
  const outputs: Metafile['outputs'] = result.metafile.outputs;
  const entryChunk = Object.keys(outputs).find((name) => outputs[name]!.entryPoint === entry)!;
  const seen = new Set<string>();
  const pending = [entryChunk];
  while (pending.length > 0) {
    const chunk = pending.pop()!;
    if (seen.has(chunk)) continue;
    seen.add(chunk);
    for (const imported of outputs[chunk]!.imports) {
      if (imported.kind === 'import-statement' && !imported.external) pending.push(imported.path);
    }
  }
  return [...seen].flatMap((chunk) => Object.keys(outputs[chunk]!.inputs));
}

const OPTIONAL = [
  { part: 'the Azure IoT device SDK', input: /node_modules\/azure-iot-device(-mqtt)?\// },
  { part: 'the DPS provisioning SDK', input: /node_modules\/azure-iot-provisioning-/ },
  { part: 'edge mode', input: /^firmware\/uplink\/edge\// },
  { part: 'DPS provisioning', input: /^firmware\/uplink\/provisioning\/(index|provisioner)\.ts$/ },
  { part: 'the sim cloud', input: /^firmware\/sim\// },
];

t.test('the gateway statically loads none of the parts board.json may leave out', async (t) => {
  const inputs = await staticInputs('firmware/main.ts');
  t.ok(inputs.includes('firmware/uplink/service.ts'), 'the graph is the real one: it holds the uplink service');
  t.ok(
    inputs.some((i) => /node_modules\/mqtt\//.test(i)),
    'and mqtt.js, which the hub needs anyway',
  );
  for (const { part, input } of OPTIONAL) {
    t.same(
      inputs.filter((i) => input.test(i)),
      [],
      `${part} is loaded only when configured`,
    );
  }
});

t.test('the uplink benchmark measures the same: its roles do not carry edge mode or the sim cloud', async (t) => {
  const inputs = await staticInputs('bench/uplink-roles.ts');
  for (const { part, input } of OPTIONAL)
    t.same(
      inputs.filter((i) => input.test(i)),
      [],
      part,
    );
});
