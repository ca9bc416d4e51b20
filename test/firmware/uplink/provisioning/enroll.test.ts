import t from 'tap';
import { chmodSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runEnrollCli } from '../../../../firmware/board/enroll-cli.js';
import { tempDir } from '../../../support/tmp.js';

/** `outpost board enroll` (install.sh --dps-*): a DPS enrollment written into board.json, checked first. */

const ROOT = new URL('../../../../', import.meta.url).pathname;
const KEY = Buffer.alloc(64, 7).toString('base64');

function setup(t: Parameters<typeof tempDir>[0]): string {
  const dir = tempDir(t);
  symlinkSync(join(ROOT, 'boards'), join(dir, 'boards'));
  const board = {
    board: 'sim',
    identity: { gatewayId: 'outpost-sim' },
    uplink: {
      protocol: 'azure',
      keepaliveSecs: 120,
      connectionString: 'HostName=hub.example;DeviceId=outpost-sim;SharedAccessKey=a2V5',
    },
  };
  writeFileSync(join(dir, 'board.json'), JSON.stringify(board));
  chmodSync(join(dir, 'board.json'), 0o640);
  writeFileSync(join(dir, 'dps-group-key'), `${KEY}\n`);
  return dir;
}

async function enroll(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runEnrollCli(args, { out: (l) => out.push(l), err: (l) => err.push(l) }, {});
  return { code, out, err };
}

t.test('the uplink becomes a DPS enrollment; what else the azure uplink set is kept; the mode too', async (t) => {
  const dir = setup(t);
  const file = join(dir, 'board.json');
  const r = await enroll([
    '--dps-scope',
    '0ne00000A0A',
    '--dps-group-key-file',
    'dps-group-key',
    '--dps-registration-id',
    'pump-{hostname}',
    file,
  ]);
  t.same(r.err, []);
  t.equal(r.code, 0);
  t.match(r.out, [/^ok {4}.*board\.json: enrolled with DPS scope 0ne00000A0A; board pump-.* on variant sim/]);
  t.same(JSON.parse(readFileSync(file, 'utf8')), {
    board: 'sim',
    identity: {},
    uplink: {
      protocol: 'azure',
      keepaliveSecs: 120,
      provisioning: { idScope: '0ne00000A0A', registrationId: 'pump-{hostname}', groupKeyFile: 'dps-group-key' },
    },
  });
  t.equal(statSync(file).mode & 0o777, 0o640, 'board.json keeps its mode');
});

t.test('an enrollment the board check refuses leaves board.json as it was', async (t) => {
  const dir = setup(t);
  const file = join(dir, 'board.json');
  const before = readFileSync(file, 'utf8');
  const badScope = await enroll(['--dps-scope', 'my-hub', '--dps-group-key-file', 'dps-group-key', file]);
  t.equal(badScope.code, 1);
  t.match(badScope.err, [/board\.json: \$\.uplink\.provisioning\.idScope: expected a DPS ID scope/, /left as it was/]);
  const noKey = await enroll(['--dps-scope', '0ne00000A0A', '--dps-group-key-file', 'missing-key', file]);
  t.match(noKey.err, [
    /\$\.uplink\.provisioning\.groupKeyFile: expected a readable file .*missing-key: ENOENT/,
    /left/,
  ]);
  t.equal(readFileSync(file, 'utf8'), before);
  const usage = await enroll(['--dps-group-key-file', 'k', file]);
  t.equal(usage.code, 2);
  t.match(usage.err[0], /--dps-scope is required/);
});
