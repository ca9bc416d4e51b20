import { chownSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import t, { type Test } from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { ConfigError } from '../../../firmware/config/errors.js';
import { PAGE_PASSWORD_FILE_DEFAULT } from '../../../firmware/config/page.js';
import { parsePasswordFile, readPasswordFile, TECHNICIAN_USER, verifyPassword } from '../../../firmware/page/passwd.js';
import { runPasswdCli } from '../../../firmware/page/passwd-cli.js';
import {
  LoginLimiter,
  LOGIN_FAILURES_MAX,
  LOGIN_WINDOW_SECS,
  SESSION_IDLE_SECS,
  Sessions,
} from '../../../firmware/page/sessions.js';
import { pageTls } from '../../../firmware/page/tls.js';
import { hubCerts } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

const BOARDS = new URL('../../../boards', import.meta.url).pathname;
const simBoard = { board: 'sim', identity: { gatewayId: 'gw-1' } };

async function board(t: Test, page: unknown) {
  const dir = t.testdir({ 'board.json': JSON.stringify({ ...simBoard, page }) });
  return loadBoard(join(dir, 'board.json'), { boardsDir: BOARDS }).then((b) => ({ dir, b }));
}

t.test('board.json page section: off when absent, listen parsed, passwordFile relative to board.json', async (t) => {
  const plain = join(t.testdir({ 'board.json': JSON.stringify(simBoard) }), 'board.json');
  t.equal((await loadBoard(plain, { boardsDir: BOARDS })).page, null);
  const { b } = await board(t, { listen: '0.0.0.0:8443' });
  t.same(b.page, { host: '0.0.0.0', port: 8443, passwordFile: PAGE_PASSWORD_FILE_DEFAULT });
  const relative = await board(t, { listen: '[::]:443', passwordFile: 'secrets/page-passwd' });
  t.same(relative.b.page, { host: '::', port: 443, passwordFile: join(relative.dir, 'secrets/page-passwd') });
  for (const [page, pattern] of [
    [{ listen: '8443' }, /\$\.page\.listen.*an address and port like "0\.0\.0\.0:8443"/],
    [{ listen: '0.0.0.0:99999' }, /\$\.page\.listen.*between 0 and 65535/],
    [{ listen: '0.0.0.0:8443', passwd: 'x' }, /\$\.page\.passwd.*one of the known fields listen, passwordFile/],
  ] as const) {
    const error = await board(t, page).then(
      () => null,
      (err: unknown) => err,
    );
    t.type(error, ConfigError);
    t.match((error as Error).message, pattern);
    t.match((error as Error).message, /board\.json/, 'the error names the file');
  }
});

t.test('outpost passwd writes an scrypt line from stdin that verifies, and refuses short passwords', async (t) => {
  const file = join(tempDir(t), 'page-passwd');
  const out: string[] = [];
  const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
  t.equal(await runPasswdCli(file, Readable.from(['correct horse ', 'battery\n']), io), 0);
  t.equal(statSync(file).mode & 0o777, 0o640);
  if (process.getuid?.() === 0) {
    // As under sudo: /etc/outpost is root:outpost, and the service reads the file through that group.
    const dir = join(tempDir(t), 'etc-outpost');
    mkdirSync(dir);
    chownSync(dir, 0, 4242);
    t.equal(await runPasswdCli(join(dir, 'page-passwd'), Readable.from(['correct horse battery\n']), io), 0);
    t.equal(statSync(join(dir, 'page-passwd')).gid, 4242, "the file takes the folder's group, not root's");
  }
  const text = readFileSync(file, 'utf8');
  t.notOk(text.includes('correct horse'), 'the password is not stored');
  t.match(text, /^technician:scrypt:32768:8:1:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+\n$/);
  const entry = await readPasswordFile(file);
  t.equal(await verifyPassword(entry, TECHNICIAN_USER, 'correct horse battery'), true);
  t.equal(await verifyPassword(entry, TECHNICIAN_USER, 'correct horse batterY'), false);
  t.equal(await verifyPassword(entry, 'admin', 'correct horse battery'), false, 'the user must match too');
  t.equal(await runPasswdCli(file, Readable.from(['short\n']), io), 1);
  t.match(out.at(-1), /10 to 1024 characters/);
  t.equal(readFileSync(file, 'utf8'), text, 'a refused password leaves the old file');
  t.throws(() => parsePasswordFile('technician:md5:abc', file), { message: new RegExp(`^${file}: expected one line`) });
  const absent = readPasswordFile(join(tempDir(t), 'absent'));
  await t.rejects(absent, /absent: ENOENT \(set a password with `outpost passwd`\)/);
});

t.test('sessions end after SESSION_IDLE_SECS without use; a use restarts the idle clock', async (t) => {
  let nowMs = 0;
  const sessions = new Sessions(() => nowMs);
  const s = sessions.create('technician', '10.0.0.5');
  nowMs += (SESSION_IDLE_SECS - 1) * 1000;
  t.ok(sessions.touch(s.id), 'used just before the timeout');
  nowMs += (SESSION_IDLE_SECS - 1) * 1000;
  t.ok(sessions.touch(s.id), 'the use restarted the clock');
  nowMs += SESSION_IDLE_SECS * 1000 + 1;
  t.equal(sessions.touch(s.id), undefined, 'idle too long');
  t.equal(sessions.size, 0);
});

t.test('the login limiter lets an address try again once LOGIN_WINDOW_SECS have passed', async (t) => {
  let nowMs = 0;
  const limiter = new LoginLimiter(() => nowMs);
  for (let i = 0; i < LOGIN_FAILURES_MAX; i++) limiter.fail('10.0.0.9');
  t.equal(limiter.retryAfterSecs('10.0.0.9'), LOGIN_WINDOW_SECS);
  t.equal(limiter.retryAfterSecs('10.0.0.10'), 0, 'other addresses are not held back');
  nowMs += LOGIN_WINDOW_SECS * 1000;
  t.equal(limiter.retryAfterSecs('10.0.0.9'), 0);
});

t.test('TLS: a self-signed pair made once and kept; the hub certificate when board.json has one', async (t) => {
  const dataDir = tempDir(t);
  const first = await pageTls(dataDir, 'gw-1', undefined);
  t.match(first.cert.toString(), /^-----BEGIN CERTIFICATE-----/);
  t.equal(statSync(join(dataDir, 'page-tls', 'key.pem')).mode & 0o077, 0, "the key is the service user's alone");
  t.same((await pageTls(dataDir, 'gw-1', undefined)).cert, first.cert, 'the second start reuses the certificate');
  const certs = await hubCerts(tempDir(t));
  const hub = await pageTls(tempDir(t), 'gw-1', { tls: { certPath: certs.certPath, keyPath: certs.keyPath } });
  t.equal(hub.cert.toString(), readFileSync(certs.certPath, 'utf8'));
  t.equal(hub.source, certs.certPath);
});
