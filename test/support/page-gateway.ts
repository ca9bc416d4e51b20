import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readFile, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { request } from 'node:https';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBoard } from '../../firmware/board/board.js';
import { createLogger } from '../../firmware/log/logger.js';
import { RecentErrors } from '../../firmware/ops/report.js';
import { Ops } from '../../firmware/ops/service.js';
import { hashPassword, TECHNICIAN_USER } from '../../firmware/page/passwd.js';
import { PAGE_TLS_DIR } from '../../firmware/page/tls.js';
import { Runtime } from '../../firmware/runtime.js';
import { buildPageAssets } from '../../scripts/page-assets.js';
import { tempDir } from './tmp.js';

/** A real gateway runtime with the technician page on loopback, for the page tests. */

const BOARDS = fileURLToPath(new URL('../../boards', import.meta.url));
let assetsBuilt: Promise<string> | null = null;

/** The page's assets, built once per test process by the same script as `npm run build`, removed at exit. */
function pageAssets(): Promise<string> {
  if (!assetsBuilt) {
    const dir = mkdtempSync(join(tmpdir(), 'outpost-page-assets-'));
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
    assetsBuilt = (buildPageAssets(dir) as Promise<void>).then(() => dir);
  }
  return assetsBuilt;
}

export interface PageGateway {
  runtime: Runtime;
  ops: Ops;
  port: number;
  /** The page's self-signed certificate, trusted by pageRequest. */
  ca: Buffer;
  dir: string;
  boardFile: string;
  logs(): Array<Record<string, unknown>>;
}

export interface PageGatewayOptions {
  password: string;
  /** board.json sections besides board, identity, storage and page. */
  board?: Record<string, unknown>;
  /** Runs on the data dir before the runtime opens it (identities for children). */
  beforeStart?: (dataDir: string) => Promise<void>;
}

export async function startPageGateway(
  t: Parameters<typeof tempDir>[0],
  opts: PageGatewayOptions,
): Promise<PageGateway> {
  const dir = tempDir(t, 'outpost-page-');
  await symlink(BOARDS, join(dir, 'boards'));
  const boardFile = join(dir, 'board.json');
  const json = {
    board: 'sim',
    identity: { gatewayId: 'outpost-page' },
    storage: { dataDir: './data' },
    page: { listen: '127.0.0.1:0', passwordFile: 'page-passwd' },
    ...opts.board,
  };
  await writeFile(boardFile, JSON.stringify(json, null, 2));
  await writeFile(join(dir, 'page-passwd'), await hashPassword(TECHNICIAN_USER, opts.password));
  const board = await loadBoard(boardFile);
  await mkdir(board.storage.dataDir, { recursive: true });
  await opts.beforeStart?.(board.storage.dataDir);
  const lines: Array<Record<string, unknown>> = [];
  const destination = { write: (line: string) => void lines.push(JSON.parse(line)) };
  const logger = createLogger({ level: 'debug', destination });
  const errors = new RecentErrors();
  const runtime = new Runtime(board, { hubPort: 0, log: logger, onError: (source, err) => errors.add(source, err) });
  let ops: Ops | null = null;
  // Registered before start: a start that fails half-way must still close what it opened.
  t.teardown(async () => {
    await ops?.stopping();
    await runtime.stop();
    await ops?.close();
  });
  await runtime.start();
  const runDir = join(dir, 'run');
  await mkdir(runDir);
  const assetsDir = await pageAssets();
  const env = { RUNTIME_DIRECTORY: runDir };
  ops = await Ops.start({ runtime, logger, errors, env, pageAssetsDir: assetsDir, version: 'test' });
  // With the page off there is no certificate either: nothing was made that nobody asked for.
  const certFile = join(board.storage.dataDir, PAGE_TLS_DIR, 'cert.pem');
  const ca = ops.pagePort === null ? Buffer.alloc(0) : await readFile(certFile);
  return { runtime, ops, port: ops.pagePort ?? 0, ca, dir, boardFile, logs: () => lines };
}

export interface PageResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTPS request to the page, verifying its certificate (SAN 127.0.0.1); `localAddress` picks the source. */
export function pageRequest(
  gw: PageGateway,
  method: string,
  path: string,
  opts: { headers?: Record<string, string>; body?: string; localAddress?: string } = {},
): Promise<PageResponse> {
  const { headers, localAddress } = opts;
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: gw.port, method, path, ca: gw.ca, headers, localAddress }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** Cookies a response set, name → value. */
export function setCookies(res: PageResponse): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of (res.headers['set-cookie'] as string[] | undefined) ?? []) {
    const [pair] = line.split(';');
    const [name, ...value] = pair!.split('=');
    out[name!] = value.join('=');
  }
  return out;
}

/** Logs in through the form as a browser does; returns the session cookie header and the page's CSRF token. */
export async function login(
  gw: PageGateway,
  password: string,
  localAddress?: string,
): Promise<{ cookie: string; csrf: string; res: PageResponse }> {
  const form = await pageRequest(gw, 'GET', '/login', { localAddress });
  const loginCsrf = /name="csrf" value="([^"]+)"/.exec(form.body)![1]!;
  const res = await pageRequest(gw, 'POST', '/login', {
    localAddress,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      cookie: `outpost_login=${setCookies(form).outpost_login}`,
    },
    body: new URLSearchParams({ csrf: loginCsrf, user: TECHNICIAN_USER, password }).toString(),
  });
  const session = setCookies(res).outpost_session;
  if (res.status !== 303 || !session) return { cookie: '', csrf: '', res };
  const cookie = `outpost_session=${session}`;
  const page = await pageRequest(gw, 'GET', '/', { headers: { cookie } });
  return { cookie, csrf: /name="csrf-token" content="([^"]+)"/.exec(page.body)![1]!, res };
}
