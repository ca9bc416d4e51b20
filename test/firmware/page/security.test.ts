import { existsSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import t from 'tap';
import { formatReport } from '../../../firmware/ops/format.js';
import { PAGE_TLS_DIR } from '../../../firmware/page/tls.js';
import { freePort } from '../../support/brokers.js';
import { login, pageRequest, setCookies, startPageGateway, type PageGateway } from '../../support/page-gateway.js';
import { LOGIN_FAILURES_MAX } from '../../../firmware/page/sessions.js';

const PASSWORD = 'correct horse battery';
const FORM = 'application/x-www-form-urlencoded';
/** Events read from one stream connection: the first (sent at once) and two of the per-second updates. */
const STREAM_EVENTS = 3;
/** Three events arrive within about 2 s; ten times that is a broken stream, not a slow machine. */
const STREAM_WAIT_MS = 20_000;
/** Secrets planted in board.json: none may appear in a diagnostics bundle. */
const PLANTED = ['planted-uplink-pw-81723', 'planted-url-secret-5521'];

async function gateway(t: Parameters<typeof startPageGateway>[0]): Promise<PageGateway> {
  // The uplink points at a closed loopback port: a real mqtt uplink, cut.
  const url = `mqtt://gw:${PLANTED[1]}@127.0.0.1:${await freePort()}`;
  return startPageGateway(t, {
    password: PASSWORD,
    board: {
      uplink: { protocol: 'mqtt', url, username: 'gw', password: PLANTED[0] },
      metrics: { port: 0 },
    },
  });
}

t.test('without a page section no page port is opened and no certificate is made', async (t) => {
  const gw = await startPageGateway(t, { password: PASSWORD, board: { page: false } });
  t.equal(gw.ops.pagePort, null);
  t.equal(gw.ops.report().page, null, 'outpost status says there is no page');
  t.notOk(existsSync(join(gw.runtime.dataDir, PAGE_TLS_DIR)));
  t.notOk(gw.logs().some((l) => l.page === 'listen'));
});

t.test('nothing but the login page and its stylesheet is reachable without a session', async (t) => {
  const gw = await gateway(t);
  t.equal((await pageRequest(gw, 'GET', '/login')).status, 200);
  t.equal((await pageRequest(gw, 'GET', '/assets/page.css')).status, 200);
  const page = await pageRequest(gw, 'GET', '/');
  t.equal(page.status, 303);
  t.equal(page.headers.location, '/login');
  t.equal((await pageRequest(gw, 'GET', '/assets/app.js')).status, 401, 'the page code is behind the login');
  for (const path of ['/api/status', '/api/events']) {
    t.equal((await pageRequest(gw, 'GET', path)).status, 401, `GET ${path}`);
  }
  for (const path of ['/api/wake', '/api/diagnostics', '/api/board-check', '/api/devices/relay1/methods/switch']) {
    const res = await pageRequest(gw, 'POST', path, { headers: { 'content-type': 'application/json' }, body: '{}' });
    t.equal(res.status, 401, `POST ${path}`);
  }
  const forgedCookie = { cookie: 'outpost_session=forged-session-id' };
  const forged = await pageRequest(gw, 'GET', '/api/status', { headers: forgedCookie });
  t.equal(forged.status, 401, 'an unknown session id is no session');
});

t.test('security headers on every response; the session cookie is HttpOnly, Secure, SameSite=Strict', async (t) => {
  const gw = await gateway(t);
  const { cookie, res } = await login(gw, PASSWORD);
  const sessionLine = (res.headers['set-cookie'] as string[]).find((l) => l.startsWith('outpost_session='))!;
  t.match(sessionLine, /; HttpOnly/);
  t.match(sessionLine, /; Secure/);
  t.match(sessionLine, /; SameSite=Strict/);
  const paths = [
    ['/login', {}],
    ['/assets/page.css', {}],
    ['/', { cookie }],
    ['/api/status', { cookie }],
  ] as const;
  for (const [path, headers] of paths) {
    const r = await pageRequest(gw, 'GET', path, { headers });
    t.equal(r.status, 200, path);
    const csp = String(r.headers['content-security-policy']);
    t.match(csp, /default-src 'none'/, `${path}: CSP`);
    t.match(csp, /script-src 'self'/);
    t.match(csp, /frame-ancestors 'none'/);
    t.notMatch(csp, /unsafe-inline|unsafe-eval/, `${path}: no inline scripts or styles allowed`);
    t.match(String(r.headers['strict-transport-security']), /^max-age=\d{7,}/, `${path}: HSTS`);
    t.equal(r.headers['x-content-type-options'], 'nosniff');
    t.equal(r.headers['x-frame-options'], 'DENY');
  }
  const asset = await pageRequest(gw, 'GET', '/assets/app.js', { headers: { cookie } });
  t.match(String(asset.headers['cache-control']), /^private, max-age=\d+/, 'assets are cacheable, by the browser only');
  t.ok(asset.headers.etag);
  const revalidate = { cookie, 'if-none-match': String(asset.headers.etag) };
  t.equal((await pageRequest(gw, 'GET', '/assets/app.js', { headers: revalidate })).status, 304);
  t.equal((await pageRequest(gw, 'GET', '/api/status', { headers: { cookie } })).headers['cache-control'], 'no-store');
  const markup = (await pageRequest(gw, 'GET', '/', { headers: { cookie } })).body;
  t.notMatch(markup, /<script(?![^>]*\bsrc=)/, 'no inline script in the page');
  t.notMatch(markup, /<style|\sstyle=/, 'no inline style in the page');
});

t.test('every POST needs the session CSRF token, the login form its own', async (t) => {
  const gw = await gateway(t);
  const form = await pageRequest(gw, 'GET', '/login');
  const noToken = await pageRequest(gw, 'POST', '/login', {
    headers: { 'content-type': FORM, cookie: `outpost_login=${setCookies(form).outpost_login}` },
    body: new URLSearchParams({ user: 'technician', password: PASSWORD }).toString(),
  });
  t.equal(noToken.status, 403, 'a login post without the form token is refused, right password or not');
  t.notOk(setCookies(noToken).outpost_session);

  const { cookie, csrf } = await login(gw, PASSWORD);
  const json = { 'content-type': 'application/json', cookie };
  t.equal((await pageRequest(gw, 'POST', '/api/wake', { headers: json, body: '{}' })).status, 403, 'no token');
  const wake = (token: string) =>
    pageRequest(gw, 'POST', '/api/wake', { headers: { ...json, 'x-csrf-token': token }, body: '{}' });
  t.equal((await wake('x'.repeat(43))).status, 403, 'wrong token');
  const other = await login(gw, PASSWORD);
  t.equal((await wake(other.csrf)).status, 403, "another session's token");
  t.equal((await wake(csrf)).status, 200, 'the right token');
  t.ok(
    gw.logs().some((l) => l.page === 'csrf'),
    'refusals are logged',
  );
  t.equal(gw.ops.report().page?.csrfRefused, 3, 'and counted in the status report');
  const metrics = await (await fetch(`http://127.0.0.1:${gw.ops.metricsPort}/metrics`)).text();
  t.match(metrics, /^outpost_page_csrf_refused_total 3$/m, 'and in the metrics');
  t.ok(
    gw.logs().some((l) => l.page === 'wake' && l.user === 'technician'),
    'the action is logged with who did it',
  );
  const withToken = { ...json, 'x-csrf-token': csrf };
  const post = (path: string, body = '{}') => pageRequest(gw, 'POST', path, { headers: withToken, body });
  const check = await post('/api/board-check');
  t.same(JSON.parse(check.body), { ok: true, file: gw.boardFile, summary: JSON.parse(check.body).summary });
  t.match(JSON.parse(check.body).summary, /^board outpost-page on variant sim: \d+ buses/);
  t.equal((await post('/api/devices/nosuch/methods/switch')).status, 404, 'an unknown device');
  t.equal((await post('/api/devices/relay1/methods/%3Cscript%3E')).status, 400, 'a method name the hub would refuse');
  t.equal((await post('/api/devices/relay1/methods/get', '{not json')).status, 400, 'a body that is not JSON');
  const big = await post('/api/wake', 'x'.repeat(64 * 1024));
  t.equal(big.status, 413, 'an oversized body is refused');
});

t.test('wrong passwords are rate-limited per address, and each attempt is logged', async (t) => {
  const gw = await gateway(t);
  for (let i = 0; i < LOGIN_FAILURES_MAX; i++) {
    t.equal((await login(gw, `wrong-${i}`)).res.status, 401, `failure ${i + 1}`);
  }
  const limited = await login(gw, PASSWORD);
  t.equal(limited.res.status, 429, 'the right password is refused once the address used up its failures');
  t.match(String(limited.res.headers['retry-after']), /^\d+$/);
  t.equal(limited.cookie, '');
  const neighbour = await login(gw, PASSWORD, '127.0.0.2');
  t.equal(neighbour.res.status, 303, 'another address still logs in');
  const attempts = gw.logs().filter((l) => l.page === 'login');
  t.equal(attempts.filter((l) => l.ok === false && l.address === '127.0.0.1').length, LOGIN_FAILURES_MAX + 1);
  t.ok(attempts.some((l) => l.ok === true && l.address === '127.0.0.2'));
  t.notOk(JSON.stringify(gw.logs()).includes(PASSWORD), 'no password reaches the log');
  const statusRes = await pageRequest(gw, 'GET', '/api/status', { headers: { cookie: neighbour.cookie } });
  const status = JSON.parse(statusRes.body) as { page: unknown };
  const counted = {
    sessions: 1,
    loginFailures: LOGIN_FAILURES_MAX,
    loginRefused: 1,
    csrfRefused: 0,
    historyFileFailures: 0,
  };
  t.same(status.page, counted, 'the page shows the refusals');
  t.same(gw.ops.report().page, { port: gw.port, ...counted }, 'so does outpost status');
  t.match(formatReport(gw.ops.report()), /^page: {6}port \d+, 1 sessions, 5 failed logins, 1 refused, 0 bad CSRF$/m);
  const metrics = await (await fetch(`http://127.0.0.1:${gw.ops.metricsPort}/metrics`)).text();
  t.match(metrics, new RegExp(`^outpost_page_login_failures_total ${LOGIN_FAILURES_MAX}$`, 'm'));
  t.match(metrics, /^outpost_page_login_refused_total 1$/m);
});

t.test('the live stream stays open and sends a status event each second on one connection', async (t) => {
  const gw = await gateway(t);
  const { cookie } = await login(gw, PASSWORD);
  type Stream = { count: number; type: string | undefined; csp: string | undefined };
  const events = await new Promise<Stream>((resolve, reject) => {
    const options = { host: '127.0.0.1', port: gw.port, path: '/api/events', ca: gw.ca, headers: { cookie } };
    let count = 0;
    const giveUp = () => (req.destroy(), reject(new Error(`${count} events in ${STREAM_WAIT_MS} ms`)));
    const timer = setTimeout(giveUp, STREAM_WAIT_MS);
    const req = request(options, (res) => {
      res.on('data', (d: Buffer) => {
        count += d
          .toString()
          .split('\n')
          .filter((line) => line.startsWith('data: ')).length;
        if (count < STREAM_EVENTS) return;
        clearTimeout(timer);
        req.destroy();
        resolve({ count, type: res.headers['content-type'], csp: res.headers['content-security-policy'] as string });
      });
      res.on('end', () => (clearTimeout(timer), reject(new Error(`the stream ended after ${count} events`))));
    });
    req.on('error', reject);
    req.end();
  });
  t.equal(events.count, STREAM_EVENTS);
  t.equal(events.type, 'text/event-stream');
  t.match(events.csp, /default-src 'none'/);
});

t.test('the diagnostics bundle holds the status and the board file, none of its secrets', async (t) => {
  const gw = await gateway(t);
  const { cookie, csrf } = await login(gw, PASSWORD);
  const res = await pageRequest(gw, 'POST', '/api/diagnostics', {
    headers: { 'content-type': FORM, cookie },
    body: new URLSearchParams({ csrf }).toString(),
  });
  t.equal(res.status, 200);
  const disposition = /^attachment; filename="outpost-outpost-page-diagnostics\.json"$/;
  t.match(String(res.headers['content-disposition']), disposition);
  for (const secret of PLANTED) t.notOk(res.body.includes(secret), `${secret} is not in the bundle`);
  const bundle = JSON.parse(res.body);
  t.equal(bundle.status.gatewayId, 'outpost-page');
  t.equal(bundle.boardFile.content.uplink.password, '[redacted]');
  t.equal(bundle.boardFile.content.uplink.username, 'gw', 'what is not secret stays readable');
  t.equal(bundle.boardCheck.ok, true);
  t.ok(bundle.devices.some((d: { id: string }) => d.id === 'relay1'));
  t.ok(gw.logs().some((l) => l.page === 'diagnostics'));
});
