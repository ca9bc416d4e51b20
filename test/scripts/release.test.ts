import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { tempDir } from '../support/tmp.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
/** Building three targets (two cross-compiled) and starting two under qemu takes minutes on 2 cores. */
const RELEASE_TEST_TIMEOUT_MS = 15 * 60_000;
/** A release that has not said "outpost ready" by then is broken; qemu makes start-up ~10x slower. */
const READY_TIMEOUT_MS = 120_000;
/** Set by .ci/run after scripts/install-release-deps.sh installed the cross compilers and qemu-user-static. */
const CROSS = process.env.OUTPOST_RELEASE_CROSS === '1';

interface Target {
  name: string;
  /** How to run a binary of this target here; empty for the host's own. */
  emulator: string[];
}
const TARGETS: Target[] = [
  { name: 'linux-x64', emulator: [] },
  { name: 'linux-arm64', emulator: ['qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu'] },
  { name: 'linux-armv7', emulator: ['qemu-arm-static', '-L', '/usr/arm-linux-gnueabihf'] },
];
const built = CROSS ? TARGETS : TARGETS.filter((x) => x.emulator.length === 0);

t.setTimeout(RELEASE_TEST_TIMEOUT_MS);
if (!CROSS)
  t.comment(
    'linux-arm64 and linux-armv7 skipped: ' +
      'set OUTPOST_RELEASE_CROSS=1 after scripts/install-release-deps.sh (.ci/run does)',
  );

const outDir = tempDir(t);
const build = spawnSync(process.execPath, [join(ROOT, 'scripts/release.js'), ...built.map((x) => x.name)], {
  cwd: ROOT,
  env: { ...process.env, OUTPOST_RELEASE_DIR: outDir },
  encoding: 'utf8',
});

function unpack(t: Parameters<typeof tempDir>[0], target: string): string {
  const dir = tempDir(t);
  const run = spawnSync('tar', ['-xzf', join(outDir, `outpost-${VERSION}-${target}.tar.gz`), '-C', dir]);
  if (run.status !== 0) throw new Error(`tar: ${run.stderr.toString()}`);
  return join(dir, `outpost-${VERSION}-${target}`);
}

/** Starts the unpacked release from its own directory with nothing from the repository on its paths. */
function startRelease(
  dir: string,
  target: Target,
  dataDir: string,
): Promise<{ code: number | null; out: string; ready: boolean }> {
  const [command, ...prefix] = [...target.emulator, join(dir, 'bin/node')];
  const proc = spawn(command!, [...prefix, join(dir, 'outpost.js'), 'run', '--board', join(dir, 'board.json')], {
    cwd: dir,
    env: { PATH: '/usr/bin:/bin', OUTPOST_DATA_DIR: dataDir, OUTPOST_HUB_PORT: '0' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let ready = false;
  const timer = setTimeout(() => proc.kill('SIGKILL'), READY_TIMEOUT_MS);
  proc.stdout.on('data', (d: Buffer) => {
    out += d.toString();
    if (!ready && out.includes('"msg":"outpost ready')) {
      ready = true;
      proc.kill('SIGTERM');
    }
  });
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  return new Promise((resolve) => proc.on('close', (code) => (clearTimeout(timer), resolve({ code, out, ready }))));
}

t.test('npm run release builds one tarball per target', async (t) => {
  t.equal(build.status, 0, build.stderr.slice(-4000));
  t.match(build.stdout, /built dist\/outpost\.js: \d+ bytes/, 'the bundle size is reported');
  for (const target of built)
    t.match(
      build.stdout,
      new RegExp(`release ${target.name}: .*outpost-${VERSION}-${target.name}\\.tar\\.gz \\([\\d.]+ MiB`),
    );
});

t.test('the bundle is ASCII (V8 keeps its source one byte per character) and leaves blob upload out', async (t) => {
  const bundle = readFileSync(join(ROOT, 'dist/outpost.js'), 'latin1');
  const nonAscii = /[^\x00-\x7f]/.exec(bundle);
  t.equal(
    nonAscii,
    null,
    nonAscii
      ? `non-ASCII at byte ${nonAscii.index}: ${JSON.stringify(bundle.slice(nonAscii.index - 60, nonAscii.index + 20))}`
      : 'ASCII only',
  );
  t.notOk(bundle.includes('node_modules/@azure/storage-blob/'), '@azure/storage-blob is not bundled');
  t.ok(bundle.includes('outpost does not ship @azure/storage-blob'), 'uploadToBlob fails with a clear message instead');
  // The Azure device SDK itself is there: the azure transport is part of the gateway.
  t.ok(bundle.includes('node_modules/azure-iot-device-mqtt/'), 'azure-iot-device-mqtt is bundled');
});

for (const target of built) {
  t.test(`${target.name}: unpacked in a temp dir, the release starts on its own and reports ready`, async (t) => {
    const dir = unpack(t, target.name);
    for (const file of [
      'bin/node',
      'outpost.js',
      'page/app.js',
      'page/page.css',
      'package.json',
      'release.json',
      'outpost.service',
      'install.sh',
      'ota-launch.sh',
      'board.json',
      'boards/sim.json',
      'README.md',
      'node_modules/i2c-bus/build/Release/i2c.node',
      'node_modules/epoll/build/Release/epoll.node',
    ]) {
      t.ok(existsSync(join(dir, file)), file);
    }
    const run = await startRelease(dir, target, tempDir(t));
    t.ok(run.ready, run.ready ? 'reported ready' : `never ready:\n${run.out.slice(-3000)}`);
    t.equal(run.code, 0, 'stopped cleanly on SIGTERM');
    t.match(
      run.out,
      new RegExp(`release for ${target.name}, node v20\\.`),
      'it runs its own Node 20 and loaded its addons',
    );
  });
}

t.test('a native addon of the wrong architecture makes the release fail at start, naming the addon', async (t) => {
  const dir = unpack(t, 'linux-x64');
  // An arm64 build of a real addon, in place of the x64 one.
  copyFileSync(
    join(ROOT, 'node_modules/@serialport/bindings-cpp/prebuilds/linux-arm64/@serialport+bindings-cpp.armv8.glibc.node'),
    join(dir, 'node_modules/i2c-bus/build/Release/i2c.node'),
  );
  const run = await startRelease(dir, TARGETS[0]!, tempDir(t));
  t.notOk(run.ready, 'never ready');
  t.equal(run.code, 1);
  t.match(run.out, /native addon \\"i2c-bus\\" of this linux-x64 release does not load on this linux-x64 machine/);
});

t.test('install.sh refuses glibc older than 2.34 and the wrong architecture with a clear message', async (t) => {
  const dir = unpack(t, 'linux-x64');
  const ok = spawnSync(join(dir, 'install.sh'), ['--check'], { encoding: 'utf8' });
  t.equal(ok.status, 0, ok.stderr);
  t.match(ok.stdout, /ok: glibc 2\.\d+, x86_64, release for linux-x64/);
  // Raspberry Pi OS Bullseye's C library, reported by a getconf found first on PATH.
  const fakeBin = tempDir(t);
  writeFileSync(join(fakeBin, 'getconf'), '#!/bin/sh\necho "glibc 2.31"\n');
  chmodSync(join(fakeBin, 'getconf'), 0o755);
  const old = spawnSync(join(dir, 'install.sh'), ['--check'], {
    encoding: 'utf8',
    env: { ...process.env, PATH: `${fakeBin}:${process.env.PATH}` },
  });
  t.equal(old.status, 1);
  t.match(
    old.stderr,
    new RegExp(
      /this system has glibc 2\.31; outpost needs glibc 2\.34 or newer, /.source +
        /i\.e\. Raspberry Pi OS Bookworm \(Debian 12\) or later/.source,
    ),
  );
  const manifest = join(dir, 'release.json');
  writeFileSync(manifest, readFileSync(manifest, 'utf8').replace('"linux-x64"', '"linux-arm64"'));
  const arch = spawnSync(join(dir, 'install.sh'), ['--check'], { encoding: 'utf8' });
  t.equal(arch.status, 1);
  t.match(arch.stderr, /this release is for linux-arm64 but this machine is x86_64/);
});

t.test(
  "the release bundle speaks Azure IoT Hub: the sim board's telemetry reaches the IoT Hub emulator, attributed",
  async (t) => {
    const { IotHubEmulator } = await import('../support/iothub-emulator.js');
    const hub = await IotHubEmulator.start();
    t.teardown(() => hub.stop());
    const dir = unpack(t, 'linux-x64');
    writeFileSync(join(dir, 'ca.pem'), hub.ca.cert);
    writeFileSync(
      join(dir, 'azure.json'),
      JSON.stringify({
        board: 'sim',
        identity: { gatewayId: 'gw-release' },
        uplink: { protocol: 'azure', connectionString: hub.addDevice('gw-release'), caFile: 'ca.pem' },
      }),
    );
    const proc = spawn(join(dir, 'bin/node'), [join(dir, 'outpost.js'), 'run', '--board', join(dir, 'azure.json')], {
      cwd: dir,
      env: { PATH: '/usr/bin:/bin', OUTPOST_DATA_DIR: join(dir, 'data'), OUTPOST_HUB_PORT: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
    t.teardown(() => void proc.kill('SIGKILL'));
    const deadline = Date.now() + READY_TIMEOUT_MS;
    while (hub.telemetry.length < 2 && Date.now() < deadline && proc.exitCode === null)
      await new Promise((r) => setTimeout(r, 50));
    t.ok(
      hub.telemetry.length >= 2,
      `telemetry at IoT Hub (${hub.telemetry.length} messages); gateway said: ${out.slice(-2000)}`,
    );
    const first = hub.telemetry[0];
    t.equal(first?.deviceId, 'gw-release', "sent on the gateway's own connection");
    t.match(first?.properties, { '$.mid': /^gw-release:upstream:\d+$/ }, 'with its stable message id');
    t.ok(first?.properties['outpost-device-id'], 'the originating device named in the properties');
    proc.kill('SIGTERM');
    t.equal(await exited, 0, 'and stops cleanly on SIGTERM');
    t.notMatch(out, /storage-blob/, 'nothing asked for the blob upload SDK');
  },
);

/** What install.sh left under `root`: the user, groups, unit, program, slots, and its systemctl calls. */
function installedLayout(t: Test, root: string): void {
  const passwd = readFileSync(join(root, 'etc/passwd'), 'utf8');
  t.match(
    passwd,
    /^outpost:x:\d+:\d+::\/var\/lib\/outpost:\/usr\/sbin\/nologin$/m,
    'a system user without a login shell',
  );
  const group = readFileSync(join(root, 'etc/group'), 'utf8');
  for (const g of ['gpio', 'i2c', 'dialout'])
    t.match(group, new RegExp(`^${g}:`, 'm'), `group ${g} exists for SupplementaryGroups=`);
  t.equal(
    readFileSync(join(root, 'etc/systemd/system/outpost.service'), 'utf8'),
    readFileSync(join(ROOT, 'scripts/systemd/outpost.service'), 'utf8'),
    'the unit as shipped',
  );
  t.ok(
    existsSync(join(root, 'opt/outpost/current/bin/node')) && existsSync(join(root, 'opt/outpost/current/outpost.js')),
    'the program in /opt/outpost/current',
  );
  t.equal(readlinkSync(join(root, 'opt/outpost/releases/current')), VERSION, 'a release slot, current');
  t.ok(existsSync(join(root, 'opt/outpost/launch')), 'the OTA launcher, outside the slots');
  t.same(
    readFileSync(join(root, 'systemctl.log'), 'utf8').trim().split('\n'),
    [
      'is-active --quiet outpost',
      'daemon-reload',
      'enable outpost',
      'restart outpost',
      'is-active --quiet outpost',
      'daemon-reload',
      'enable outpost',
    ],
    'enabled and started; the second run (--no-start) does not start it',
  );
}

/** The service the install started (as its user), the reinstall, the file modes, the page password. */
function installedService(t: Test, root: string): void {
  const service = readFileSync(join(root, 'service.log'), 'utf8');
  t.match(service, /"msg":"outpost ready/, "the unit's ExecStart, run as User=outpost, reports ready");
  const status = JSON.parse(readFileSync(join(root, 'status.log'), 'utf8')) as {
    gatewayId?: string;
    variant?: string;
  };
  t.same(
    [status.gatewayId, status.variant],
    ['outpost-sim', 'sim'],
    '`outpost status` (the installed wrapper) reaches it over the status socket',
  );
  t.match(readFileSync(join(root, 'reinstall.log'), 'utf8'), /outpost install: installed/);
  t.match(
    readFileSync(join(root, 'etc/outpost/board.json'), 'utf8'),
    /"site-42"/,
    'a reinstall keeps the edited board.json',
  );
  const expectedModes = [
    '/etc/outpost 750 root:outpost',
    '/etc/outpost/board.json 640 root:outpost',
    '/var/lib/outpost/identities 700 outpost:outpost',
    '/var/lib/outpost/twins 700 outpost:outpost',
  ];
  t.same(
    readFileSync(join(root, 'modes.log'), 'utf8').trim().split('\n'),
    expectedModes,
    'board.json (passwords, connection strings) 0640 root:outpost in a 0750 directory; identities/ and twins/ 0700',
  );
  t.same(
    readFileSync(join(root, 'modes-reinstall.log'), 'utf8').trim().split('\n'),
    expectedModes,
    'a reinstall tightens the 0644 board.json and 0755 directory an older install.sh left',
  );
  t.equal(
    readFileSync(join(root, 'passwd-mode.log'), 'utf8').trim(),
    '/etc/outpost/page-passwd 640 root:outpost',
    'install.sh --page-password set the technician password from stdin',
  );
  t.equal(readFileSync(join(root, 'passwd-read.log'), 'utf8'), 'technician:', 'and the service user can read it');
  t.match(
    readFileSync(join(root, 'board-check.log'), 'utf8'),
    /^ok +\/etc\/outpost\/board\.json: board site-42 on variant sim: /m,
    '`outpost board check` checks the installed board',
  );
}

t.test(
  'install.sh installs for real (in a private mount namespace): ' +
    'user, groups, unit, wrapper, file modes; the service starts as its user',
  async (t) => {
    const probe = spawnSync('unshare', ['-m', 'true']);
    if (probe.status !== 0) {
      t.comment(`skipped: no private mount namespace here (unshare -m: ${probe.stderr.toString().trim()}); needs root`);
      return;
    }
    const dir = unpack(t, 'linux-x64');
    const root = tempDir(t);
    const run = spawnSync('unshare', ['-m', join(ROOT, 'test/scripts/install-ns.sh'), root, dir], {
      encoding: 'utf8',
      timeout: READY_TIMEOUT_MS,
    });
    t.equal(run.status, 0, `${run.stdout}${run.stderr}`);
    t.match(
      run.stdout,
      new RegExp(
        `outpost install: installed linux-x64 release ${VERSION.replaceAll('.', '\\.')} ` +
          `in /opt/outpost/releases/${VERSION.replaceAll('.', '\\.')} \\(current\\)`,
      ),
    );
    installedLayout(t, root);
    installedService(t, root);
  },
);

if (CROSS) {
  t.test('under qemu too: an x64 addon in the arm64 release makes it fail', async (t) => {
    const arm = unpack(t, 'linux-arm64');
    const x64 = unpack(t, 'linux-x64');
    mkdirSync(join(arm, 'node_modules/epoll/build/Release'), { recursive: true });
    copyFileSync(
      join(x64, 'node_modules/epoll/build/Release/epoll.node'),
      join(arm, 'node_modules/epoll/build/Release/epoll.node'),
    );
    const run = await startRelease(arm, TARGETS[1]!, tempDir(t));
    t.notOk(run.ready);
    t.equal(run.code, 1);
    t.match(run.out, /native addon \\"epoll\\" of this linux-arm64 release does not load on this linux-arm64 machine/);
  });
}
