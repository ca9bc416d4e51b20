/**
 * The OTA scenario inside the mount namespace (test/firmware/ota/ns-setup.sh; started by ota-ns.test.ts):
 * installs real releases with install.sh, runs the unit's launcher as its user under a Restart=always loop,
 * updates with `outpost update` as a technician would, and writes every check as a JSON line to the results
 * file for the test to assert. The cloud is an aedes broker in this process, on loopback, that the test
 * stops and starts like a link.
 */
import { spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LinkBroker } from './ns-broker.js';
import { Service, waitUntil } from './ns-service.js';

type Role = 'first' | 'second' | 'exits' | 'hangs' | 'noCloud' | 'watchdog' | 'tampered' | 'arm64' | 'store2';

export interface Scenario {
  root: string;
  /** An unpacked 0.1.0, installed flat first (the layout of older install.sh) as version 0.0.9. */
  flat: string;
  /** The unpacked first release (0.1.0), installed with install.sh. */
  first: string;
  keyPem: string;
  brokerPort: number;
  /** Tarballs (each with its signed manifest beside it) by role; badSignature is a manifest file. */
  tarballs: Record<Role, string>;
  badSignature: string;
  results: string;
}

const scenario = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as Scenario;
/** Long enough for a loaded 2-core machine to start a release; the launcher's deadline in the tests. */
const HEALTH_SECS = 20;
/** Start-up of a release under load, a crash loop of 4 starts, or a health deadline plus the stop. */
const STEP_TIMEOUT_MS = 90_000;
/** Records stored while the cloud is away before the update starts. */
const BACKLOG_RECORDS_MIN = 20;
const STATE = '/var/lib/outpost/ota';
const RELEASES = '/opt/outpost/releases';

const check = (name: string, ok: boolean, detail = '') =>
  appendFileSync(scenario.results, `${JSON.stringify({ name, ok, detail })}\n`);
const sh = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  spawnSync(cmd, args, { encoding: 'utf8', env: { ...process.env, ...env }, timeout: STEP_TIMEOUT_MS });
const outpost = (...args: string[]) =>
  sh('/usr/local/bin/outpost', args, { RUNTIME_DIRECTORY: join(scenario.root, 'run-outpost') });
const slot = (name: string) => (existsSync(join(RELEASES, name)) ? readlinkSync(join(RELEASES, name)) : null);
const RESULT = join(STATE, 'result');
const result = () => (existsSync(RESULT) ? (JSON.parse(readFileSync(RESULT, 'utf8')) as Record<string, string>) : null);
const ready = (version: string) => (s: Service) =>
  s.current.includes(`"msg":"outpost ${version} release`) && s.current.includes('"msg":"outpost ready');

function install(dir: string): void {
  const run = sh(join(dir, 'install.sh'), ['--no-start'], { OUTPOST_OTA_KEYS: scenario.keyPem });
  if (run.status !== 0) throw new Error(`install.sh ${dir}: ${run.stdout}${run.stderr}`);
}

/** Today's layout: an older install.sh copied the release straight into /opt/outpost. */
function installFlat(): void {
  sh('mkdir', ['-p', '/opt/outpost']);
  const files = [
    'bin',
    'node_modules',
    'outpost.js',
    'outpost.js.map',
    'page',
    'package.json',
    'release.json',
    'README.md',
  ];
  for (const f of files) sh('cp', ['-a', join(scenario.flat, f), '/opt/outpost/']);
  const release = '/opt/outpost/release.json';
  writeFileSync(release, readFileSync(release, 'utf8').replace(/"version": "[^"]+"/, '"version": "0.0.9"'));
}

function board(): void {
  writeFileSync(
    '/etc/outpost/board.json',
    JSON.stringify({
      board: 'sim',
      identity: { gatewayId: 'gw-ota' },
      storage: { dataDir: '/var/lib/outpost' },
      // aedes 1.x speaks MQTT 3.1.1 only; the topic carries the seq instead of a user property.
      uplink: {
        protocol: 'mqtt',
        url: `mqtt://127.0.0.1:${scenario.brokerPort}`,
        protocolVersion: 4,
        topicTemplate: 't/{gatewayId}/{deviceId}/{seq}',
      },
      ota: { updateHealthSecs: HEALTH_SECS },
      devices: { env: { pollIntervalMs: 100 } },
    }),
  );
}

function refusals(): void {
  const cases: [string, string[], RegExp][] = [
    [
      'a manifest signed by a key not installed',
      ['--manifest', scenario.badSignature, scenario.tarballs.second],
      /refused \(bad-signature\)/,
    ],
    ['a tampered tarball', [scenario.tarballs.tampered], /refused \(wrong-hash\): .*SHA-256/],
    [
      'a release for another target',
      [scenario.tarballs.arm64],
      /refused \(wrong-target\): the release is for linux-arm64, this gateway runs linux-x64/,
    ],
    ['a release with another ring log format', [scenario.tarballs.store2], /refused \(store-format\)/],
    [
      'the running version again',
      [scenario.tarballs.first],
      /refused \(downgrade\): 0\.1\.0 is not newer than the running 0\.1\.0/,
    ],
  ];
  for (const [what, args, error] of cases) {
    const run = outpost('update', ...args);
    check(`refused: ${what}`, run.status === 1 && error.test(run.stderr), `${run.status} ${run.stderr}`);
  }
  const unchanged = slot('current') === '0.1.0' && !existsSync(join(STATE, 'pending'));
  check('after the refusals nothing changed', unchanged, String(slot('current')));
}

function backlogRange(): { from: number; to: number } {
  type Stat = { lanes: { lane: string; ackedSeq: number; lastSeq: number }[] };
  const stat = JSON.parse(outpost('log', 'stat', '--json').stdout) as Stat;
  const lane = stat.lanes.find((l) => l.lane === 'upstream')!;
  return { from: lane.ackedSeq + 1, to: lane.lastSeq };
}

async function update(service: Service, tarball: string): Promise<void> {
  const run = outpost('update', tarball);
  if (run.status !== 0) throw new Error(`outpost update ${tarball}: ${run.stdout}${run.stderr}`);
  await service.restart();
}

async function rollback(
  service: Service,
  version: string,
  tarball: string,
  reason: RegExp,
  before?: () => void,
): Promise<void> {
  await update(service, tarball);
  before?.();
  const tail = () => service.log().slice(-3000);
  const rolledBack = () => result()?.version === version && result()?.state === 'rolled-back';
  await waitUntil(`${version} rolled back`, rolledBack, STEP_TIMEOUT_MS, tail);
  // The release fallen back to logs the rollback just after READY.
  const said = `outpost update: ${version} was rolled back to 0.1.1`;
  const logged = () => ready('0.1.1')(service) && service.current.includes(said);
  await waitUntil(`0.1.1 running again, logging the rollback of ${version}`, logged, STEP_TIMEOUT_MS, tail);
  const r = result()!;
  check(`${version} rolled back with its reason`, reason.test(r.reason) && r.from === '0.1.1', JSON.stringify(r));
  const back = slot('current') === '0.1.1' && !existsSync(join(STATE, 'pending'));
  check(`after ${version}: current is 0.1.1 again, nothing pending`, back, `${slot('current')}`);
  check(`0.1.1 runs again and logs the rollback of ${version}`, true);
}

/** A flat 0.0.9 and 0.1.0 installed with install.sh: the slots and the OTA key. */
function installFirst(): void {
  installFlat();
  install(scenario.first);
  check(
    'the flat layout became a slot: 0.1.0 current, 0.0.9 previous, no program files left in /opt/outpost',
    slot('current') === '0.1.0' &&
      slot('previous') === '0.0.9' &&
      !existsSync('/opt/outpost/outpost.js') &&
      existsSync('/opt/outpost/launch'),
    `${slot('current')} ${slot('previous')}`,
  );
  install(scenario.first);
  check('a reinstall of the same layout keeps the slots', slot('current') === '0.1.0' && slot('previous') === '0.0.9');
  check('install.sh installed the OTA key', existsSync('/etc/outpost/ota-keys/ota.pem'));
}

/** 0.1.0 stores a backlog offline; `outpost update` to 0.1.1 commits with the cloud back; the backlog arrives. */
async function updateAndDrain(service: Service, broker: LinkBroker): Promise<void> {
  const stored = () => backlogRange().to >= BACKLOG_RECORDS_MIN;
  await waitUntil(`${BACKLOG_RECORDS_MIN} records stored offline`, stored, STEP_TIMEOUT_MS);
  refusals();
  const run = outpost('update', scenario.tarballs.second);
  const switched = run.status === 0 && slot('current') === '0.1.1' && slot('previous') === '0.1.0';
  check('outpost update switches to 0.1.1', switched, `${run.stdout}${run.stderr}`);
  const backlog = backlogRange();
  await broker.start();
  await service.restart();
  // The commit writes its result, then removes the pending record: both, before looking.
  // The gateway logs its commit once the record is written: the log line, then the files.
  const said = () => service.current.includes('outpost update: 0.1.1 committed (from 0.1.0)');
  await waitUntil('0.1.1 committed', said, STEP_TIMEOUT_MS, () => service.log().slice(-3000));
  const r = result();
  const committed = r?.state === 'committed' && r.version === '0.1.1' && !existsSync(join(STATE, 'pending'));
  check('0.1.1 committed after READY and the cloud connection', committed, JSON.stringify(result()));
  const arrived = () => new Set(broker.seqs().filter((s) => s >= backlog.from && s <= backlog.to)).size;
  await waitUntil(
    'the backlog drained',
    () => arrived() === backlog.to - backlog.from + 1,
    STEP_TIMEOUT_MS,
    () => `${arrived()} of the backlog at the broker; backlog ${backlog.from}..${backlog.to}`,
  );
  check(`the backlog stored by 0.1.0 (seq ${backlog.from}..${backlog.to}) reached the cloud from 0.1.1`, true);
  const down = outpost('update', scenario.tarballs.first);
  const downgrade = /refused \(downgrade\): 0\.1\.0 is not newer than the running 0\.1\.1/;
  check('refused: a downgrade to 0.1.0', down.status === 1 && downgrade.test(down.stderr), down.stderr);
}

/** Releases that crash, hang, find no cloud or miss the watchdog: each rolled back to 0.1.1 with its reason. */
async function rollbacks(service: Service, broker: LinkBroker): Promise<void> {
  await rollback(
    service,
    '0.2.0',
    scenario.tarballs.exits,
    /^crash-loop: started 3 times without committing, last exit status 3$/,
  );
  await rollback(
    service,
    '0.2.1',
    scenario.tarballs.hangs,
    /^health-timeout: not READY with the store open and the cloud connected within 20 s$/,
  );
  await rollback(service, '0.2.2', scenario.tarballs.noCloud, /^health-timeout: /);
  await broker.stop();
  await rollback(service, '0.2.3', scenario.tarballs.watchdog, /^watchdog: /, () => {
    // systemd's WatchdogSignal (SIGABRT) to the main process, once 0.2.3 runs without its cloud.
    // A 0.2.3 that never runs is reported by the rollback's own wait.
    const running = waitUntil('0.2.3 ready', () => ready('0.2.3')(service), STEP_TIMEOUT_MS);
    void running.then(
      () => service.signal('SIGABRT'),
      () => undefined,
    );
  });
}

async function main(): Promise<void> {
  installFirst();
  board();
  const broker = new LinkBroker(scenario.brokerPort);
  const service = new Service(join(scenario.root, 'service.log'), join(scenario.root, 'run-outpost'));
  service.start();
  try {
    await waitUntil(
      '0.1.0 ready',
      () => ready('0.1.0')(service),
      STEP_TIMEOUT_MS,
      () => service.log(),
    );
    await updateAndDrain(service, broker);
    await rollbacks(service, broker);
  } finally {
    await service.stop();
    await broker.stop();
  }
}

main().then(
  () => check('driver finished', true),
  (err: unknown) => check('driver finished', false, (err as Error).stack ?? String(err)),
);
