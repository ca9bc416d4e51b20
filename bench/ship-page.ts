// The technician page's cost in the ship benchmark: the shipped bundle started three times on the sim board,
// page off, page on without a visitor, page on with a logged-in technician's live stream open, and the
// resident set read each second while it idles (median). The page is a dynamic import behind its board
// section, so "off" must match a gateway that never had one; "session" shows what a visit costs.
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { hashPassword, TECHNICIAN_USER } from '../firmware/page/passwd.js';
import { freshDir, median, removeDir } from './harness.js';

/** Seconds of RSS samples per configuration, after the settle; the median of them is reported. */
const SAMPLE_SECS = 12;
/** Left alone first: start-up garbage collected and the sim devices' timers going. */
const SETTLE_SECS = 3;
/** "A few MB while a session is open" (the page issue), against the same gateway with the page off. */
export const PAGE_SESSION_TARGET_MB = 4;
const PASSWORD = 'bench-technician-password';

export interface PageCost {
  offMb: number;
  idleMb: number;
  sessionMb: number;
  /** Streamed events the session received while it was sampled: it was live, not just logged in. */
  events: number;
}

type Start = (
  boardFile: string,
  dir: string,
) => Promise<{ pid: number; pagePort: number | null; stop(): Promise<void> }>;

function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/^VmRSS:\s+(\d+) kB$/m.exec(status)?.[1] ?? NaN) / 1024;
}

async function sampleRss(pid: number): Promise<number> {
  await sleep(SETTLE_SECS * 1_000);
  const samples: number[] = [];
  for (let i = 0; i < SAMPLE_SECS; i++) {
    samples.push(rssMb(pid));
    await sleep(1_000);
  }
  return median(samples);
}

function https(port: number, method: string, path: string, headers: Record<string, string>, body?: string) {
  return new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
    // The page's own self-signed certificate: trust is not what is measured here.
    const req = request({ host: '127.0.0.1', port, method, path, headers, rejectUnauthorized: false }, (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

function cookie(res: { headers: Record<string, unknown> }, name: string): string {
  const lines = (res.headers['set-cookie'] as string[] | undefined) ?? [];
  const line = lines.find((l) => l.startsWith(`${name}=`));
  if (line === undefined) throw new Error(`page bench: no ${name} cookie in the answer`);
  return line.split(';')[0]!;
}

/** Logs in through the form and keeps /api/events open; returns a counter of events and a closer. */
async function openSession(port: number): Promise<{ events: () => number; close: () => void }> {
  const form = await https(port, 'GET', '/login', {});
  const csrf = /name="csrf" value="([^"]+)"/.exec(form.body)?.[1] ?? '';
  const body = new URLSearchParams({ csrf, user: TECHNICIAN_USER, password: PASSWORD }).toString();
  const headers = { 'content-type': 'application/x-www-form-urlencoded', cookie: cookie(form, 'outpost_login') };
  const login = await https(port, 'POST', '/login', headers, body);
  if (login.status !== 303) throw new Error(`page bench: login answered ${login.status}`);
  const session = cookie(login, 'outpost_session');
  let events = 0;
  const req = request({
    host: '127.0.0.1',
    port,
    path: '/api/events',
    headers: { cookie: session },
    rejectUnauthorized: false,
  });
  req.on('response', (res) => res.on('data', (d: Buffer) => (events += d.toString().split('\n\n').length - 1)));
  req.on('error', () => {});
  req.end();
  return { events: () => events, close: () => req.destroy() };
}

async function one(start: Start, page: 'off' | 'idle' | 'session'): Promise<{ mb: number; events: number }> {
  const dir = await freshDir(`ship-page-${page}`);
  writeFileSync(join(dir, 'page-passwd'), await hashPassword(TECHNICIAN_USER, PASSWORD));
  const section = page === 'off' ? {} : { page: { listen: '127.0.0.1:0', passwordFile: join(dir, 'page-passwd') } };
  cpSync(join(process.cwd(), 'boards'), join(dir, 'boards'), { recursive: true });
  const boardFile = join(dir, 'board.json');
  writeFileSync(boardFile, JSON.stringify({ board: 'sim', identity: { gatewayId: 'outpost-sim' }, ...section }));
  const gw = await start(boardFile, dir);
  try {
    if (page !== 'session') return { mb: await sampleRss(gw.pid), events: 0 };
    if (gw.pagePort === null) throw new Error('page bench: the gateway reported no page port');
    const session = await openSession(gw.pagePort);
    const mb = await sampleRss(gw.pid);
    session.close();
    return { mb, events: session.events() };
  } finally {
    await gw.stop();
    await removeDir(dir);
  }
}

export async function pageCost(start: Start): Promise<PageCost> {
  const off = await one(start, 'off');
  const idle = await one(start, 'idle');
  const session = await one(start, 'session');
  return { offMb: off.mb, idleMb: idle.mb, sessionMb: session.mb, events: session.events };
}
