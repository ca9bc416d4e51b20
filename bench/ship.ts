// `npm run bench -- ship`: what a gateway costs as shipped. The bundle (dist/outpost.js) is started as
// systemd starts it, and timed from spawn to "outpost ready" (READY=1 goes out just before that line);
// then children publish through the hub with QoS 1 and the gateway's peak RSS (VmHWM) is read: once at the
// hub's default per-child limit (50 msg/s, what a configured gateway accepts; the target applies here) and
// once flooding with the limit lifted (a stress figure, reported). The arm64
// release is started the same way under qemu-user (reported, no target: qemu's speed is not a Pi's).
// OUTPOST_BENCH_SHIP_LOAD_SECS shortens the load phase.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { IdentityCache } from '../firmware/auth/cache.js';
import { parseScopeDocument, SCOPE_SCHEMA } from '../firmware/auth/identity.js';
import { makeSasToken } from '../firmware/auth/sas.js';
import { envInt, fmt, formatTable, freshDir, median, processCounters, removeDir, type BenchModule } from './harness.js';
import { PAGE_SESSION_TARGET_MB, pageCost } from './ship-page.js';

export const REPO = resolve('.');
/** The V8 flags every launcher passes (the systemd unit among them): the gateway measured as shipped. */
export const NODE_FLAGS = (
  JSON.parse(readFileSync(join(REPO, 'scripts/node-flags.json'), 'utf8')) as { flags: string[] }
).flags;
export const GATEWAY_ID = 'outpost-sim';
export const HUB_HOST = 'bench.example.net';
const TARGETS = { readyMs: 1_000, rssMb: 80 };
/** Start-ups measured per configuration; the median is reported. */
const READY_RUNS = 5;
const QEMU_READY_RUNS = 3;
/** A start that has not reported ready by then has failed (qemu is ~10x slower than native). */
const READY_TIMEOUT_MS = 120_000;
/**
 * Children just under the hub's default publishRatePerSec (50): 800 msg/s in all, far beyond a sensor site's
 * rate. Under, not at: a publish over the limit is dropped without a PUBACK (MQTT 3.1.1 has no refusal).
 */
const PACED_CHILDREN = 20;
const PACED_RATE_PER_CHILD_PER_SEC = 40;
/** A publish without PUBACK after this long ends its loop, so a dropped message cannot hang the benchmark. */
const PUBACK_TIMEOUT_MS = 10_000;
/** The flood: children with QoS 1 publishes always in flight and the hub's rate limit lifted. */
const FLOOD_CHILDREN = 5;
const INFLIGHT_PER_CHILD = 8;
const BODY = Buffer.from(JSON.stringify({ temperatureC: 21.5, humidityPct: 48.2, pad: 'x'.repeat(180) }));

export interface Gateway {
  pid: number;
  readyMs: number;
  hubPort: number;
  /** The technician page's port, null with the page off. */
  pagePort: number | null;
  stop(): Promise<void>;
  /** SIGKILL: a crash, nothing flushed on the way out. */
  kill(): Promise<void>;
}

/** Spawns `command args`, resolves once it logs "outpost ready" with the time since spawn. */
export function startGateway(command: string, args: string[], env: NodeJS.ProcessEnv, cwd: string): Promise<Gateway> {
  const started = performance.now();
  const proc = spawn(command, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(
      () => (proc.kill('SIGKILL'), reject(new Error(`not ready within ${READY_TIMEOUT_MS} ms:\n${out}`))),
      READY_TIMEOUT_MS,
    );
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const line = out.split('\n').find((l) => l.includes('"msg":"outpost ready'));
      if (!line || proc.pid === undefined) return;
      clearTimeout(timer);
      proc.stdout.removeAllListeners('data');
      proc.stdout.resume();
      const ready = JSON.parse(line) as { hubPort: number; pagePort?: number | null };
      resolvePromise({
        pid: proc.pid,
        readyMs: performance.now() - started,
        hubPort: Number(ready.hubPort),
        pagePort: ready.pagePort ?? null,
        stop: async () => void (proc.kill('SIGTERM'), await exited),
        kill: async () => void (proc.kill('SIGKILL'), await exited),
      });
    });
    proc.on('exit', (code) => reject(new Error(`gateway exited (${code}) before ready:\n${out}`)));
  });
}

/** A board directory beside a copy of boards/; `flood` lifts the hub's per-child rate limit. */
function boardDir(dir: string, flood = false): string {
  cpSync(join(REPO, 'boards'), join(dir, 'boards'), { recursive: true });
  const hub = flood ? { publishRatePerSec: 100_000, publishBurst: 100_000 } : {};
  writeFileSync(join(dir, 'board.json'), JSON.stringify({ board: 'sim', identity: { gatewayId: GATEWAY_ID }, hub }));
  return join(dir, 'board.json');
}

/** The scope document naming `children` (what the cloud publishes for the gateway, see firmware/auth/identity.ts). */
export function scopeDocument(children: Array<{ id: string; key: string }>): Record<string, unknown> {
  const devices = children.map((c) => ({
    deviceId: c.id,
    status: 'enabled',
    version: 1,
    auth: { type: 'sas', primaryKey: c.key },
  }));
  return { schema: SCOPE_SCHEMA, gatewayId: GATEWAY_ID, version: 1, hubHostName: HUB_HOST, devices };
}

export async function seedChildren(dataDir: string, count: number): Promise<Array<{ id: string; key: string }>> {
  const children = Array.from({ length: count }, (_, i) => ({
    id: `bench-${i}`,
    key: Buffer.alloc(32, i + 1).toString('base64'),
  }));
  const cache = await IdentityCache.open(dataDir);
  await cache.applyScope(parseScopeDocument(scopeDocument(children), GATEWAY_ID), Date.now());
  cache.close();
  return children;
}

/** A child's MQTT login at the hub: the IoT Hub device dialect with a SAS token valid for an hour. */
export function childLogin(child: { id: string; key: string }): {
  clientId: string;
  username: string;
  password: string;
} {
  return {
    clientId: child.id,
    username: `${HUB_HOST}/${child.id}/?api-version=2021-04-12`,
    password: makeSasToken(`${HUB_HOST}/devices/${child.id}`, child.key, Math.floor(Date.now() / 1000) + 3600),
  };
}

/**
 * QoS 1 publishes from every child for `secs`; returns the number acknowledged. Paced: one at a time, every
 * 1000/ratePerSec ms; flood (ratePerSec null): INFLIGHT_PER_CHILD always in flight.
 */
async function load(
  port: number,
  children: Array<{ id: string; key: string }>,
  secs: number,
  ratePerSec: number | null,
): Promise<number> {
  const deadline = Date.now() + secs * 1000;
  let acked = 0;
  let unacked = 0;
  const clients: MqttClient[] = await Promise.all(
    children.map((c) =>
      mqtt.connectAsync(`mqtt://127.0.0.1:${port}`, {
        ...childLogin(c),
        protocolVersion: 4,
        reconnectPeriod: 0,
      }),
    ),
  );
  const gapMs = ratePerSec === null ? 0 : 1000 / ratePerSec;
  await Promise.all(
    clients.flatMap((client, i) =>
      Array.from({ length: ratePerSec === null ? INFLIGHT_PER_CHILD : 1 }, async () => {
        for (let next = Date.now(); Date.now() < deadline; next += gapMs) {
          let timer: NodeJS.Timeout | undefined;
          const timedOut = new Promise<false>((r) => (timer = setTimeout(() => r(false), PUBACK_TIMEOUT_MS)));
          const ok = await Promise.race([
            client.publishAsync(`devices/${children[i]!.id}/messages/events/`, BODY, { qos: 1 }).then(() => true),
            timedOut,
          ]);
          clearTimeout(timer);
          if (!ok) return void unacked++;
          acked++;
          if (gapMs > 0) await new Promise((r) => setTimeout(r, Math.max(0, next + gapMs - Date.now())));
        }
      }),
    ),
  );
  await Promise.all(clients.map((c) => c.endAsync(true)));
  if (unacked > 0)
    console.log(
      `ship: ${unacked} publishes got no PUBACK within ${PUBACK_TIMEOUT_MS} ms (refused by the hub's limits)`,
    );
  return acked;
}

/** Starts the bundle, puts the load on it, returns its peak RSS and how many publishes were acknowledged. */
async function underLoad(loadSecs: number, flood: boolean): Promise<{ rssMb: number; acked: number }> {
  const dir = await freshDir('ship-load');
  const children = await seedChildren(join(dir, 'data'), flood ? FLOOD_CHILDREN : PACED_CHILDREN);
  const gw = await startGateway(
    process.execPath,
    [...NODE_FLAGS, join(REPO, 'dist/outpost.js'), 'run', '--board', boardDir(dir, flood)],
    { OUTPOST_DATA_DIR: join(dir, 'data'), OUTPOST_HUB_PORT: '0' },
    dir,
  );
  const acked = await load(gw.hubPort, children, loadSecs, flood ? null : PACED_RATE_PER_CHILD_PER_SEC);
  const rssMb = processCounters(gw.pid)?.peakRssMb ?? NaN;
  await gw.stop();
  await removeDir(dir);
  return { rssMb, acked };
}

async function x64(
  loadSecs: number,
): Promise<{ readyMs: number; paced: { rssMb: number; acked: number }; flood: { rssMb: number; acked: number } }> {
  const readies: number[] = [];
  for (let i = 0; i < READY_RUNS; i++) {
    const dir = await freshDir('ship-ready');
    const gw = await startGateway(
      process.execPath,
      [...NODE_FLAGS, join(REPO, 'dist/outpost.js'), 'run', '--board', boardDir(dir)],
      { OUTPOST_DATA_DIR: join(dir, 'data'), OUTPOST_HUB_PORT: '0' },
      dir,
    );
    readies.push(gw.readyMs);
    await gw.stop();
    await removeDir(dir);
  }
  return { readyMs: median(readies), paced: await underLoad(loadSecs, false), flood: await underLoad(loadSecs, true) };
}

/** The arm64 release under qemu-user, built first when the cross compiler is there; null (with why) otherwise. */
async function arm64UnderQemu(): Promise<{ readyMs: number | null; why: string }> {
  const version = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version;
  const tarball = join(REPO, `release/outpost-${version}-linux-arm64.tar.gz`);
  const has = (cmd: string) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).status === 0;
  if (!has('qemu-aarch64-static'))
    return { readyMs: null, why: 'qemu-aarch64-static missing (scripts/install-release-deps.sh)' };
  if (!existsSync(tarball)) {
    if (!has('aarch64-linux-gnu-g++'))
      return { readyMs: null, why: 'no arm64 release and no cross compiler (scripts/install-release-deps.sh)' };
    execFileSync(process.execPath, [join(REPO, 'scripts/release.js'), 'linux-arm64'], {
      cwd: REPO,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  }
  const dir = await freshDir('ship-arm64');
  execFileSync('tar', ['-xzf', tarball, '-C', dir]);
  const root = join(dir, `outpost-${version}-linux-arm64`);
  const readies: number[] = [];
  for (let i = 0; i < QEMU_READY_RUNS; i++) {
    const args = [
      '-L',
      '/usr/aarch64-linux-gnu',
      join(root, 'bin/node'),
      ...NODE_FLAGS,
      join(root, 'outpost.js'),
      'run',
      '--board',
      join(root, 'board.json'),
    ];
    const gw = await startGateway(
      'qemu-aarch64-static',
      args,
      { OUTPOST_DATA_DIR: join(dir, `data-${i}`), OUTPOST_HUB_PORT: '0' },
      root,
    );
    readies.push(gw.readyMs);
    await gw.stop();
  }
  await removeDir(dir);
  return { readyMs: median(readies), why: `median of ${QEMU_READY_RUNS}` };
}

async function run(): Promise<void> {
  const loadSecs = envInt('OUTPOST_BENCH_SHIP_LOAD_SECS', 15);
  execFileSync(process.execPath, [join(REPO, 'scripts/build.js'), 'firmware/main.ts'], { cwd: REPO, stdio: 'inherit' });
  const bundleBytes = statSync(join(REPO, 'dist/outpost.js')).size;
  const native = await x64(loadSecs);
  const page = await pageCost((boardFile, dir) =>
    startGateway(
      process.execPath,
      [...NODE_FLAGS, join(REPO, 'dist/outpost.js'), 'run', '--board', boardFile],
      { OUTPOST_DATA_DIR: join(dir, 'data'), OUTPOST_HUB_PORT: '0' },
      dir,
    ),
  );
  const arm = await arm64UnderQemu();
  const figures = { loadSecs, bundleBytes, native, page, arm };
  printTable(figures);
  printJson(figures);
}

/** What run measured, for the table and the JSON line. */
interface ShipFigures {
  loadSecs: number;
  bundleBytes: number;
  native: Awaited<ReturnType<typeof x64>>;
  page: Awaited<ReturnType<typeof pageCost>>;
  arm: Awaited<ReturnType<typeof arm64UnderQemu>>;
}

const verdict = (ok: boolean) => (ok ? 'PASS' : 'MISS');

function printTable({ loadSecs, bundleBytes, native, page, arm }: ShipFigures): void {
  const pageDeltaMb = page.sessionMb - page.offMb;
  const { paced, flood } = native;
  const armReadyMs = arm.readyMs === null ? 'n/a' : fmt(arm.readyMs);
  console.log(
    `\nship: bundle ${fmt(bundleBytes / 2 ** 20, 2)} MiB; load phases of ${loadSecs} s, ` +
      'QoS 1 through the hub, sim devices running',
  );
  console.log(
    formatTable(
      ['measure', 'value', 'target', 'result'],
      [
        ['bundle bytes', fmt(bundleBytes), '—', 'reported'],
        [
          `x64 start → READY ms (median of ${READY_RUNS})`,
          fmt(native.readyMs),
          `≤ ${TARGETS.readyMs}`,
          verdict(native.readyMs <= TARGETS.readyMs),
        ],
        [
          `x64 peak RSS MiB, ${PACED_CHILDREN} children at the hub's ${PACED_RATE_PER_CHILD_PER_SEC} msg/s ` +
            `(${fmt(paced.acked / loadSecs)} msg/s acked)`,
          fmt(paced.rssMb, 1),
          `≤ ${TARGETS.rssMb}`,
          verdict(paced.rssMb <= TARGETS.rssMb),
        ],
        [
          `x64 peak RSS MiB, flood: ${FLOOD_CHILDREN} × ${INFLIGHT_PER_CHILD} in flight, no rate limit ` +
            `(${fmt(flood.acked / loadSecs)} msg/s acked)`,
          fmt(flood.rssMb, 1),
          `(${TARGETS.rssMb})`,
          `stress, ${verdict(flood.rssMb <= TARGETS.rssMb)}`,
        ],
        ['x64 RSS MiB idle, page off (median of 1 s samples)', fmt(page.offMb, 1), '—', 'baseline'],
        ['x64 RSS MiB idle, page on, no visitor', fmt(page.idleMb, 1), '—', `+${fmt(page.idleMb - page.offMb, 1)}`],
        [
          `x64 RSS MiB, page on, a technician's live stream open (${page.events} events)`,
          fmt(page.sessionMb, 1),
          `≤ off + ${PAGE_SESSION_TARGET_MB}`,
          verdict(pageDeltaMb <= PAGE_SESSION_TARGET_MB),
        ],
        ['arm64 release under qemu start → READY ms', armReadyMs, '—', arm.why],
      ],
    ),
  );
}

function printJson({ loadSecs, bundleBytes, native, page, arm }: ShipFigures): void {
  const pageDeltaMb = page.sessionMb - page.offMb;
  const { paced, flood } = native;
  console.log(
    JSON.stringify({
      readyMs: Math.round(native.readyMs),
      rssMb: Number(paced.rssMb.toFixed(1)),
      bundleBytes,
      rssFloodMb: Number(flood.rssMb.toFixed(1)),
      pacedAckedPerSec: Math.round(paced.acked / loadSecs),
      floodAckedPerSec: Math.round(flood.acked / loadSecs),
      arm64QemuReadyMs: arm.readyMs === null ? null : Math.round(arm.readyMs),
      pageOffRssMb: Number(page.offMb.toFixed(1)),
      pageIdleRssMb: Number(page.idleMb.toFixed(1)),
      pageSessionRssMb: Number(page.sessionMb.toFixed(1)),
      pageSessionDeltaMb: Number(pageDeltaMb.toFixed(1)),
      pagePass: pageDeltaMb <= PAGE_SESSION_TARGET_MB,
      readyPass: native.readyMs <= TARGETS.readyMs,
      rssPass: paced.rssMb <= TARGETS.rssMb,
    }),
  );
}

async function child(role: string): Promise<Record<string, unknown>> {
  throw new Error(`ship bench has no child role "${role}"`);
}

export default { run, child } satisfies BenchModule;
