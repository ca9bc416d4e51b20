import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { fetchRetained } from '../../../firmware/auth/scope-sync.js';
import { scopeTopic } from '../../../firmware/side-channel.js';
import { loadBoard } from '../../../firmware/board/board.js';
import { runScopeCli } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { newKey, scopeDocument } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';
import { bundleGateway } from '../../support/gateway-process.js';

const BOARDS_DIR = new URL('../../../boards', import.meta.url).pathname;
/** A command that has not exited by then is broken, not slow. */
const COMMAND_WAIT_MS = 30_000;

function gateway(dir: string, uplink: unknown): string {
  symlinkSync(BOARDS_DIR, join(dir, 'boards'));
  writeFileSync(join(dir, 'board.json'), JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-1' }, uplink }));
  writeFileSync(
    join(dir, 'scope.json'),
    JSON.stringify(scopeDocument('gw-1', 3, [{ deviceId: 'child-1', key: newKey() }])),
  );
  return join(dir, 'board.json');
}

async function outpost(bundle: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  const proc = spawn(process.execPath, [bundle, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), COMMAND_WAIT_MS);
  const [code] = await once(proc, 'exit');
  clearTimeout(timer);
  return { code: code as number, out, err };
}

t.test(
  "outpost scope publish (the bundle): mqtt uplink, retained on the gateway's scope topic at the uplink's broker",
  async (t) => {
    const broker = await AedesBroker.start();
    t.teardown(() => broker.stop());
    const dir = tempDir(t);
    const board = gateway(dir, { protocol: 'mqtt', url: broker.url, protocolVersion: 4 });
    const bundle = await bundleGateway(dir);
    const result = await outpost(bundle, ['scope', 'publish', '--board', board, join(dir, 'scope.json')]);
    t.equal(result.code, 0, result.err);
    t.match(
      result.out,
      /published the scope for gw-1 \(1 devices\) to outpost\/gw-1\/scope at mqtt:\/\/127\.0\.0\.1:\d+, retained/,
    );
    const retained = await fetchRetained({ url: broker.url }, scopeTopic('gw-1'));
    t.match(JSON.parse(retained!.toString()), { gatewayId: 'gw-1', version: 3, devices: [{ deviceId: 'child-1' }] });

    writeFileSync(join(dir, 'bad.json'), JSON.stringify({ ...scopeDocument('gw-1', 4, []), gatewayId: 'gw-2' }));
    const refused = await outpost(bundle, ['scope', 'publish', '--board', board, join(dir, 'bad.json')]);
    t.equal(refused.code, 1);
    t.match(refused.err, /bad\.json: .*gw/, 'a document for another gateway is refused before anything is sent');
    t.equal(
      JSON.parse((await fetchRetained({ url: broker.url }, scopeTopic('gw-1')))!.toString()).version,
      3,
      'the ' + 'retained scope is unchanged',
    );
  },
);

t.test('azure uplink: the desired patch on stdout and the az command that applies it', async (t) => {
  const dir = tempDir(t);
  const board = await loadBoard(
    gateway(dir, {
      protocol: 'azure',
      connectionString: 'HostName=plant-hub.azure-devices.net;DeviceId=gw-1;SharedAccessKey=a2V5',
    }),
  );
  const out: string[] = [];
  const err: string[] = [];
  const code = await runScopeCli(['publish', join(dir, 'scope.json')], board, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
  });
  t.equal(code, 0);
  t.match(JSON.parse(out.join('')), { outpostScope: { gatewayId: 'gw-1', version: 3 } }, 'the twin patch');
  t.match(err.join(''), /azure-iothub.*not\s+installed/s);
  const command = new RegExp(
    /az iot hub device-twin update --hub-name plant-hub --device-id gw-1 \\\n/.source +
      /\s+--desired "\$\(cat scope-patch\.json\)"/.source,
  );
  t.match(err.join(''), command);
});

t.test('no cloud, no scope; a usage error is exit 2', async (t) => {
  const dir = tempDir(t);
  const board = await loadBoard(gateway(dir, undefined));
  const err: string[] = [];
  const io = { out: () => {}, err: (s: string) => err.push(s) };
  t.equal(await runScopeCli(['publish', join(dir, 'scope.json')], board, io), 1);
  t.match(err.join(''), /the uplink is "none"/);
  t.equal(await runScopeCli(['publish'], board, io), 2);
});
