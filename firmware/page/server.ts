import type { IncomingMessage, ServerResponse } from 'node:http';
import { randomBytes } from 'node:crypto';
import type { Logger } from '../log/logger.js';
import { boardCheck, diagnostics, invokeDevice } from './actions.js';
import type { Assets } from './assets.js';
import type { BacklogHistory } from './history.js';
import type { PageHost } from './host.js';
import {
  BodyTooLarge,
  cookie,
  LOGIN_COOKIE,
  parseFields,
  readBody,
  readCookie,
  securityHeaders,
  send,
  sendJson,
  SESSION_COOKIE,
} from './http.js';
import { verifyPassword, type PasswordEntry } from './passwd.js';
import { LoginLimiter, sameToken, SESSION_IDLE_SECS, Sessions, type Session } from './sessions.js';
import { loginPage, mainPage } from './views.js';

/** How often the live stream sends a status update, ms: once a second, as `outpost status --watch` does. */
export const EVENT_INTERVAL_MS = 1_000;
/** Live streams open at once; a browser holds one per tab, and each costs a report a second. */
export const EVENT_STREAMS_MAX = 8;
/** Reported properties remembered per device for the page (relay state, fault): a bound on a chatty driver. */
const REPORTED_KEYS_MAX = 32;
/**
 * Events between two that carry the whole chart series (up to a day of minutes and ten minutes of seconds,
 * about 150 kB of JSON); the others carry only their own backlog, which the browser appends.
 */
const HISTORY_RESEND_TICKS = 60;
/** Only these are public: the login form and the stylesheet it uses. */
const PUBLIC_ASSETS = new Set(['page.css']);
const METHOD_PATH = /^\/api\/devices\/([^/]+)\/methods\/([^/]+)$/;

export interface PageContext {
  host: PageHost;
  logger: Logger;
  assets: Assets;
  history: BacklogHistory;
  password: () => Promise<PasswordEntry>;
}

/** Requests of the technician's page, after TLS: sessions, CSRF, the login limiter, the live stream, actions. */
export class PageHandler {
  readonly sessions = new Sessions();
  readonly limiter = new LoginLimiter();
  private readonly streams = new Set<ServerResponse>();
  private csrfRefused = 0;
  private readonly reported: Record<string, Record<string, unknown>> = {};
  private readonly timer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /** When the link last changed state, as the page shows it ("up since 10:42"): the report has no such field. */
  private link: { state: string; sinceWallMs: number } | null = null;
  private ticks = 0;

  constructor(private readonly ctx: PageContext) {
    this.unsubscribe = ctx.host.onDeviceReported((id, patch) => this.remember(id, patch));
    this.timer = setInterval(() => this.tick(), EVENT_INTERVAL_MS);
    this.tick();
  }

  close(): void {
    clearInterval(this.timer);
    this.unsubscribe();
    for (const res of this.streams) res.end();
    this.streams.clear();
  }

  handle(req: IncomingMessage, res: ServerResponse): void {
    this.route(req, res).catch((err: unknown) => {
      if (err instanceof BodyTooLarge) return void sendJson(res, 413, { error: err.message });
      if (err instanceof SyntaxError) return void sendJson(res, 400, { error: `the body is not JSON: ${err.message}` });
      this.ctx.logger.warn({ err, url: req.url }, 'page: request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error, see the gateway log' });
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const path = new URL(req.url ?? '/', 'https://page').pathname;
    const asset = path.startsWith('/assets/') ? path.slice('/assets/'.length) : null;
    if (req.method === 'GET' && path === '/login') return this.showLogin(res, null, 200);
    if (req.method === 'POST' && path === '/login') return this.login(req, res);
    if (req.method === 'GET' && asset !== null && PUBLIC_ASSETS.has(asset)) {
      return this.ctx.assets.serve(req, res, asset);
    }
    const session = this.sessions.touch(readCookie(req, SESSION_COOKIE));
    if (!session) {
      // Only the page itself redirects: a favicon or asset fetch sent to /login would replace the login form's token.
      if (req.method === 'GET' && path === '/') {
        return void send(res, 303, 'text/plain', 'log in first\n', { location: '/login' });
      }
      return void sendJson(res, 401, { error: 'log in first' });
    }
    if (req.method === 'GET') return this.get(req, res, session, path, asset);
    if (req.method !== 'POST') return void sendJson(res, 405, { error: `${req.method} is not allowed` });
    const fields = parseFields(req, await readBody(req));
    const csrf = req.headers['x-csrf-token'] ?? fields.csrf;
    if (!sameToken(typeof csrf === 'string' ? csrf : undefined, session.csrf)) {
      const who = { user: session.user, address: session.address };
      this.csrfRefused++;
      this.ctx.logger.warn({ page: 'csrf', ...who, path }, 'page: POST without a valid CSRF token refused');
      return void sendJson(res, 403, { error: 'missing or wrong CSRF token: reload the page' });
    }
    return this.post(res, session, path, fields);
  }

  private get(req: IncomingMessage, res: ServerResponse, session: Session, path: string, asset: string | null): void {
    const { gatewayId, version } = this.ctx.host;
    if (path === '/') return send(res, 200, 'text/html; charset=utf-8', mainPage(session.csrf, gatewayId, version));
    if (path === '/api/status') return sendJson(res, 200, this.snapshot());
    if (path === '/api/events') return this.openStream(res);
    if (asset !== null) return this.ctx.assets.serve(req, res, asset);
    sendJson(res, 404, { error: `no page ${path}` });
  }

  private async post(
    res: ServerResponse,
    session: Session,
    path: string,
    fields: Record<string, unknown>,
  ): Promise<void> {
    const { host, logger } = this.ctx;
    const who = { user: session.user, address: session.address };
    const method = METHOD_PATH.exec(path);
    if (path === '/logout') {
      this.sessions.end(session.id);
      logger.info({ page: 'logout', ...who }, 'page: logged out');
      const headers = { location: '/login', 'set-cookie': cookie(SESSION_COOKIE, '', 0) };
      return void send(res, 303, 'text/plain', 'logged out\n', headers);
    }
    if (path === '/api/wake') {
      host.wake('technician page');
      logger.info({ page: 'wake', ...who }, 'page: uplink woken');
      return void sendJson(res, 200, { ok: true });
    }
    if (method) {
      const [deviceId, name] = [decodeURIComponent(method[1]!), decodeURIComponent(method[2]!)];
      const result = await invokeDevice(host, deviceId, name, fields.payload ?? null);
      const line = { page: 'method', ...who, deviceId, method: name, status: result.status };
      logger.info(line, `page: ${deviceId}.${name} -> ${result.status}`);
      return void sendJson(res, result.status, result.body);
    }
    if (path === '/api/board-check') {
      const result = await boardCheck(host);
      logger.info({ page: 'board-check', ...who, result: result.body }, 'page: board check');
      return void sendJson(res, result.status, result.body);
    }
    if (path === '/api/diagnostics') {
      const bundle = await diagnostics(host, this.reported);
      logger.info({ page: 'diagnostics', ...who, bytes: bundle.length }, 'page: diagnostics bundle downloaded');
      const name = `outpost-${host.gatewayId}-diagnostics.json`;
      const headers = { 'content-disposition': `attachment; filename="${name}"` };
      return void send(res, 200, 'application/json; charset=utf-8', bundle, headers);
    }
    sendJson(res, 404, { error: `no action ${path}` });
  }

  private showLogin(res: ServerResponse, message: string | null, status: number, extra: Record<string, string> = {}) {
    // Double-submit token: a cross-site form cannot read the cookie, so it cannot post a matching field.
    const csrf = randomBytes(32).toString('base64url');
    const headers = { ...extra, 'set-cookie': cookie(LOGIN_COOKIE, csrf) };
    send(res, status, 'text/html; charset=utf-8', loginPage(csrf, message), headers);
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const address = req.socket.remoteAddress ?? 'unknown';
    const wait = this.limiter.retryAfterSecs(address);
    if (wait > 0) {
      this.limiter.refused++;
      const fields = { page: 'login', address, ok: false, retryAfterSecs: wait };
      this.ctx.logger.warn(fields, 'page: login refused, too many failures');
      const message = `Too many failed logins: try again in ${wait} s.`;
      return this.showLogin(res, message, 429, { 'retry-after': String(wait) });
    }
    const fields = parseFields(req, await readBody(req));
    if (!sameToken(readCookie(req, LOGIN_COOKIE), String(fields.csrf ?? ''))) {
      this.ctx.logger.warn({ page: 'login', address, ok: false }, 'page: login without a valid CSRF token refused');
      return this.showLogin(res, 'The form expired: please try again.', 403);
    }
    const user = String(fields.user ?? '');
    const entry = await this.ctx.password().catch((err: Error) => {
      this.ctx.logger.error({ page: 'login', address, err }, `page: ${err.message}`);
      return null;
    });
    if (!entry) return this.showLogin(res, 'No technician password is usable on this gateway: see its log.', 503);
    if (!(await verifyFields(entry, user, fields.password))) {
      this.limiter.fail(address);
      this.ctx.logger.warn({ page: 'login', address, user, ok: false }, 'page: login failed');
      return this.showLogin(res, 'Wrong user or password.', 401);
    }
    this.limiter.succeed(address);
    const session = this.sessions.create(user, address);
    this.ctx.logger.info({ page: 'login', address, user, ok: true }, 'page: logged in');
    send(res, 303, 'text/plain', 'logged in\n', {
      location: '/',
      'set-cookie': [cookie(SESSION_COOKIE, session.id, SESSION_IDLE_SECS), cookie(LOGIN_COOKIE, '', 0)],
    });
  }

  private openStream(res: ServerResponse): void {
    if (this.streams.size >= EVENT_STREAMS_MAX) {
      return sendJson(res, 503, { error: `${EVENT_STREAMS_MAX} live views are open already` });
    }
    // Headers only, the response stays open: tick() writes one event a second until the browser goes.
    res.writeHead(200, { ...securityHeaders(), 'cache-control': 'no-store', 'content-type': 'text/event-stream' });
    res.write(`data: ${JSON.stringify(this.snapshot(this.ctx.host.report(), true))}\n\n`);
    this.streams.add(res);
    // The response's close: the request's fires once its (empty) body is read, long before the browser goes.
    res.on('close', () => this.streams.delete(res));
  }

  private tick(): void {
    const report = this.ctx.host.report();
    this.ctx.history.add(report);
    if (this.link?.state !== report.link) this.link = { state: report.link, sinceWallMs: Date.now() };
    this.ticks += 1;
    if (this.streams.size === 0) return;
    const data = `data: ${JSON.stringify(this.snapshot(report, this.ticks % HISTORY_RESEND_TICKS === 0))}\n\n`;
    for (const res of this.streams) res.write(data);
  }

  /** `withHistory`: the whole chart series; between those the browser appends each event's own backlog. */
  snapshot(report = this.ctx.host.report(), withHistory = true) {
    return {
      version: this.ctx.host.version,
      report,
      linkSinceWallMs: this.link?.sinceWallMs ?? null,
      devices: this.ctx.host.devices().map((d) => ({
        id: d.id,
        compatible: d.compatible,
        label: d.label ?? null,
        state: d.state,
        error: d.lastError ?? null,
      })),
      reported: this.reported,
      history: withHistory ? this.ctx.history.list() : null,
      atWallMs: Date.now(),
      page: this.counters(),
    };
  }

  /** What the page refused, for `outpost status` and the metrics. */
  counters() {
    const { failed: loginFailures, refused: loginRefused } = this.limiter;
    const historyFileFailures = this.ctx.history.fileFailures();
    const { csrfRefused } = this;
    return { sessions: this.sessions.size, loginFailures, loginRefused, csrfRefused, historyFileFailures };
  }

  private remember(deviceId: string, patch: Record<string, unknown>): void {
    const merged = { ...this.reported[deviceId], ...patch };
    this.reported[deviceId] = Object.fromEntries(Object.entries(merged).slice(0, REPORTED_KEYS_MAX));
  }
}

async function verifyFields(entry: PasswordEntry, user: string, password: unknown): Promise<boolean> {
  return typeof password === 'string' && verifyPassword(entry, user, password);
}
