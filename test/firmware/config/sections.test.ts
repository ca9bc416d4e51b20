import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { runBoardCheckCli } from '../../../firmware/board/check.js';
import { ConfigErrors } from '../../../firmware/config/errors.js';
import { bundleGateway } from '../../support/gateway-process.js';
import { createTestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

const BOARDS_DIR = new URL('../../../boards', import.meta.url).pathname;
/** A gateway that has not exited or said "outpost ready" by then is broken, not slow. */
const GATEWAY_WAIT_MS = 30_000;

/** A gateway folder: board.json with the given sections beside the real boards/. */
function gatewayDir(dir: string, sections: Record<string, unknown>): string {
  symlinkSync(BOARDS_DIR, join(dir, 'boards'));
  writeFileSync(
    join(dir, 'board.json'),
    JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw-1' }, ...sections }),
  );
  return join(dir, 'board.json');
}

/** Every mistake of issue 19 at once: bad uplink protocol, hub port, hub option, route source, DeviceId. */
const BROKEN = {
  uplink: {
    protocol: 'carrier-pigeon',
    connectionString: 'HostName=hub.example;DeviceId=someone-else;SharedAccessKey=a2V5',
  },
  hub: { tcp: { port: 99_999 }, bogusOption: 1 },
  routes: { toCloud: 'FROM /messages/* INTO $upstream', lost: 'FROM /nowhere INTO $upstream' },
};
const BROKEN_LINES = [
  'board.json: $.uplink.protocol: expected one of "mqtt", "azure", "sim", "none", got "carrier-pigeon"',
  /^board\.json: \$\.hub\.bogusOption: expected one of the known fields tcp, tls, hostNames, .*, got "bogusOption"$/,
  'board.json: $.hub.tcp.port: expected an integer between 0 and 65535 (TCP port), got 99999',
  new RegExp(
    /^board\.json: \$\.routes\.lost: expected a route in IoT Edge syntax: FROM must be \/messages\/\*, /.source +
      /.* \(found "\/nowhere"\), got "FROM \/nowhere INTO \$upstream"$/.source,
  ),
  'board.json: $.uplink.connectionString: expected DeviceId=gw-1 (identity.gatewayId), got DeviceId=someone-else',
];

t.test('board check validates uplink, hub and routes and prints every problem in the one format', async (t) => {
  const dir = tempDir(t);
  const file = gatewayDir(dir, BROKEN);
  const out: string[] = [];
  const err: string[] = [];
  process.chdir(dir);
  const code = await runBoardCheckCli(['board.json'], { out: (l) => out.push(l), err: (l) => err.push(l) });
  t.equal(code, 1);
  t.same(out, []);
  t.equal(err.length, BROKEN_LINES.length, 'one line per problem');
  BROKEN_LINES.forEach((line, i) =>
    typeof line === 'string' ? t.equal(err[i], `error ${line}`) : t.match(err[i]!.slice(6), line),
  );
  t.notMatch(err.join('\n'), /a2V5/, 'the key in the connection string is not printed');
  const error = await loadBoard(file).catch((e: unknown) => e);
  t.type(error, ConfigErrors);
  t.equal((error as ConfigErrors).errors.length, BROKEN_LINES.length, 'loadBoard throws them together');
});

t.test('board check quotes a bad value without the credentials in it', async (t) => {
  const dir = tempDir(t);
  gatewayDir(dir, { uplink: { protocol: 'mqtt', url: 'mqttx://gw:TypoSecret-77@127.0.0.1:1' } });
  const err: string[] = [];
  t.equal(await runBoardCheckCli([join(dir, 'board.json')], { out: () => {}, err: (l) => err.push(l) }), 1);
  t.match(err, [
    new RegExp(
      /\$\.uplink\.url: expected mqtt:\/\/host:port or mqtts:\/\/host:port, /.source +
        /got "mqttx:\/\/gw:\[redacted\]@127\.0\.0\.1:1"/.source,
    ),
  ]);
  t.notOk(err.join('').includes('TypoSecret-77'));
});

t.test('outpost run reports every problem at once, one log line each, and exits 1', async (t) => {
  const dir = tempDir(t);
  gatewayDir(dir, BROKEN);
  const bundle = await bundleGateway(dir);
  const proc = spawn(process.execPath, [bundle, 'run'], {
    cwd: dir,
    env: { ...process.env, OUTPOST_HUB_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), GATEWAY_WAIT_MS);
  const [code] = await once(proc, 'exit');
  clearTimeout(timer);
  t.equal(code, 1);
  const fatal = out
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((l) => l['level'] === 'fatal');
  t.equal(fatal.length, BROKEN_LINES.length, 'all of them, not the first only');
  BROKEN_LINES.forEach((line, i) =>
    t.match(fatal[i]!['msg'], typeof line === 'string' ? `outpost: ${line}` : new RegExp(line.source.replace('^', ''))),
  );
  t.notOk(
    fatal.some((l) => 'err' in l),
    'a configuration mistake carries no stack trace',
  );
});

t.test('hub TLS paths resolve against board.json, not the working directory', async (t) => {
  const dir = tempDir(t);
  const ca = await createTestCa();
  t.teardown(() => ca.dispose());
  const server = await ca.issue('gateway.local', ['gateway.local']);
  mkdirSync(join(dir, 'hubca'));
  writeFileSync(join(dir, 'hubca', 'hub-chain.crt'), server.cert);
  writeFileSync(join(dir, 'hubca', 'hub.key'), server.key);
  const file = gatewayDir(dir, {
    hub: { tls: { port: 0, certPath: 'hubca/hub-chain.crt', keyPath: 'hubca/hub.key' } },
  });
  const bundle = await bundleGateway(dir);
  // As systemd starts it: from /, the board named by an absolute path.
  const proc = spawn(process.execPath, [bundle, 'run', '--board', file], {
    cwd: '/',
    env: { ...process.env, OUTPOST_HUB_PORT: '0', OUTPOST_DATA_DIR: join(dir, 'data') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const ready = new Promise<boolean>((resolve) => {
    const timer = setTimeout(() => resolve(false), GATEWAY_WAIT_MS);
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('outpost ready')) (clearTimeout(timer), resolve(true));
    });
    proc.once('exit', () => (clearTimeout(timer), resolve(false)));
  });
  t.ok(await ready, `ready with the TLS listener from hubca/ beside board.json:\n${out}`);
  t.match(out, /"hubTlsPort":\d+/);
  proc.kill('SIGINT');
  t.equal((await once(proc, 'exit'))[0], 0, 'stops cleanly');

  const missing = join(tempDir(t), 'elsewhere');
  mkdirSync(missing);
  const broken = gatewayDir(missing, { hub: { tls: { certPath: 'hubca/hub-chain.crt', keyPath: 'hubca/hub.key' } } });
  process.chdir('/');
  await t.rejects(
    loadBoard(broken, { files: true }),
    {
      message:
        `${broken}: $.hub.tls.certPath: expected a readable PEM file, ` +
        `got ${join(missing, 'hubca/hub-chain.crt')}: ENOENT`,
    },
    'a missing file names board.json, the field and the resolved path',
  );
});
