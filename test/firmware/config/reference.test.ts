import { readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { runBoardCheckCli } from '../../../firmware/board/check.js';
import { ConfigError } from '../../../firmware/config/errors.js';
import { renderReference } from '../../../firmware/config/reference.js';
import { OPTIONS, type OptionSpec } from '../../../firmware/config/schema.js';
import { tempDir } from '../../support/tmp.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const REFERENCE = join(ROOT, 'firmware/config/REFERENCE.md');
const EXAMPLES = ['mqtt.json', 'azure.json', 'sim-cloud.json', 'azure-dps.json'].map((name) =>
  join(ROOT, 'boards/examples', name),
);

/** The smallest valid uplink of each protocol, for options that need one around them. */
const UPLINK_BASES: Record<string, Record<string, unknown>> = {
  mqtt: { protocol: 'mqtt', url: 'mqtt://127.0.0.1:1883' },
  azure: { protocol: 'azure', connectionString: 'HostName=hub.example;DeviceId=gw-1;SharedAccessKey=a2V5' },
  sim: { protocol: 'sim' },
};

/** A sim board.json with the option at `spec.path` set to `value` (and the siblings it needs). */
function boardWith(spec: OptionSpec, value: unknown): Record<string, unknown> {
  const path = spec.path.replace('<name>', 'someRoute').split('.');
  const board: Record<string, unknown> = { board: 'sim', identity: { gatewayId: 'gw-1' } };
  if (path[0] === 'uplink') board['uplink'] = { ...UPLINK_BASES[spec.protocols?.[0] ?? 'mqtt'] };
  // DPS replaces the connection string (exactly one of them).
  if (path[1] === 'provisioning') delete (board['uplink'] as Record<string, unknown>)['connectionString'];
  let parent = board;
  for (const key of path.slice(0, -1)) {
    parent[key] = typeof parent[key] === 'object' && parent[key] !== null ? { ...(parent[key] as object) } : {};
    parent = parent[key] as Record<string, unknown>;
  }
  for (const [key, sibling] of Object.entries(spec.with ?? {})) {
    if (sibling === null) delete parent[key];
    else parent[key] = sibling;
  }
  parent[path.at(-1)!] = value;
  return board;
}

async function load(t: Parameters<typeof tempDir>[0], board: Record<string, unknown>): Promise<unknown> {
  const dir = tempDir(t);
  symlinkSync(join(ROOT, 'boards'), join(dir, 'boards'));
  writeFileSync(join(dir, 'board.json'), JSON.stringify(board));
  return loadBoard(join(dir, 'board.json')).then(
    () => null,
    (err: unknown) => err,
  );
}

t.test('REFERENCE.md is the rendering of the schema table the validators use', async (t) => {
  if (process.env.OUTPOST_WRITE_REFERENCE === '1') writeFileSync(REFERENCE, renderReference());
  t.equal(
    readFileSync(REFERENCE, 'utf8'),
    renderReference(),
    'regenerate with OUTPOST_WRITE_REFERENCE=1 (or ' + 'outpost board reference)',
  );
  const documented = [...readFileSync(REFERENCE, 'utf8').matchAll(/^\| `([^`]+)` \|/gm)].map((m) => m[1]);
  t.same(
    documented.sort(),
    OPTIONS.map((spec) => spec.path).sort(),
    'every option in the table is in the ' + 'reference, and nothing else',
  );
});

t.test('every option in the table is accepted with its example and refused, by name, with a wrong value', async (t) => {
  for (const spec of OPTIONS) {
    const accepted = await load(t, boardWith(spec, spec.example));
    t.equal(
      accepted instanceof Error ? accepted.message : null,
      null,
      `${spec.path} = ${JSON.stringify(spec.example)} is valid`,
    );
    const refused = await load(t, boardWith(spec, spec.invalid));
    t.type(refused, ConfigError, `${spec.path} = ${JSON.stringify(spec.invalid)} is refused`);
    const path = `$.${spec.path.replace('<name>', 'someRoute')}`;
    t.ok(
      (refused as Error).message
        .split('\n')
        .some((line) => new RegExp(`: \\${path.replace(/\./g, '\\.')}[:.[]`).test(line)),
      `the error names ${path}: ${(refused as Error).message}`,
    );
  }
});

t.test('an option the table does not know is refused in every section', async (t) => {
  for (const section of ['identity', 'storage', 'metrics', 'hub']) {
    const error = await load(t, {
      board: 'sim',
      identity: { gatewayId: 'gw-1' },
      [section]: { ...(section === 'identity' ? { gatewayId: 'gw-1' } : {}), bogus: 1 },
    });
    t.match(
      (error as Error).message,
      new RegExp(`\\$\\.${section}\\.bogus: expected one of the known fields`),
      section,
    );
  }
  for (const [protocol, base] of Object.entries(UPLINK_BASES)) {
    const error = await load(t, { board: 'sim', identity: { gatewayId: 'gw-1' }, uplink: { ...base, bogus: 1 } });
    t.match((error as Error).message, /\$\.uplink\.bogus: expected one of the known fields/, protocol);
  }
});

t.test('the annotated example boards pass board check', async (t) => {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runBoardCheckCli(['--no-files', ...EXAMPLES], {
    out: (l) => out.push(l),
    err: (l) => err.push(l),
  });
  t.same(err, []);
  t.equal(code, 0);
  t.equal(out.length, EXAMPLES.length);
  for (const example of EXAMPLES)
    t.match(JSON.parse(readFileSync(example, 'utf8')), { $comment: String }, `${example} is annotated`);
  const withFiles: string[] = [];
  t.equal(
    await runBoardCheckCli([EXAMPLES[0]!], { out: () => {}, err: (l) => withFiles.push(l) }),
    1,
    'without ' + '--no-files the named files are read',
  );
  t.match(
    withFiles,
    [
      /\$\.uplink\.caFile: expected a readable file \(PEM\), got .*certs\/broker-ca\.pem: ENOENT/,
      /\$\.uplink\.certFile: expected a readable file \(PEM\), got .*certs\/pump-house-7\.pem: ENOENT/,
      /\$\.uplink\.keyFile: expected a readable file \(PEM\), got .*certs\/pump-house-7\.key: ENOENT/,
    ],
    'every missing file, in field order',
  );
});
