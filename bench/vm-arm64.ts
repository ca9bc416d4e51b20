// `npm run bench -- vm-arm64`: what the arm64 release costs on Debian's arm64 kernel under qemu-system-aarch64
// (TCG), against its peer in the same run, the x64 release on the x64 field VM doing the same steps: a cold boot,
// install.sh until the unit is READY, then reboots (clean shutdown, qemu started again, as a power cycle) until
// the unit is READY at boot again. The two VMs run side by side and reboot in turn, so the machine's load drifts
// over both alike. Medians of the reboots; the last line is
// `{"boots":n,"imageSecs":n,"arm64ColdBootMs":n,"arm64InstallMs":n,"arm64BootMs":n,"arm64ReadyMs":n,"x64BootMs":n,
// "x64ReadyMs":n,"readyRatio":n,"secs":n}` (imageSecs: building or finding both images).
import { spawnSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { newKey } from '../test/support/hub-fixture.js';
import {
  Cloud,
  GUEST_BROKER_PORT,
  installRelease,
  releaseIntoShare,
  START_TIMEOUT_SECS,
  writeBoard,
  type ReleaseTarget,
} from '../test/vm/field-rig.js';
import { GUEST_UART, Vm, vmImage, type VmArch } from '../test/vm/vm.js';
import { envInt, fmt, formatTable, median, type BenchModule } from './harness.js';

/** Reboots per VM after the install; OUTPOST_BENCH_VM_ARM64_BOOTS overrides. Each is one to four minutes. */
const BOOTS_DEFAULT = 3;
/** A start at boot: READY=1 within the drop-in's TimeoutStartSec, plus the exec round trips. */
const READY_WAIT_MS = (START_TIMEOUT_SECS + 30) * 1000;
/** How often the host asks whether the unit is active: fine against starts of tens of seconds. */
const READY_POLL_MS = 500;

const TARGET: Record<VmArch, ReleaseTarget> = { amd64: 'linux-x64', arm64: 'linux-arm64' };

interface Measured {
  arch: VmArch;
  vm: Vm;
  coldBootMs: number;
  installMs: number;
  /** Per reboot: qemu's start to the agent, and to the unit active (host clock). */
  bootMs: number[];
  readyMs: number[];
  /** Per reboot: READY as the guest's systemd saw it, in ms since its kernel started (guest clock). */
  guestReadyMs: number[];
}

async function startVm(arch: VmArch, image: string, work: string, cloud: Cloud): Promise<Measured> {
  const dir = join(work, arch);
  const share = join(dir, 'share');
  mkdirSync(share, { recursive: true });
  const release = releaseIntoShare(TARGET[arch], dir, share);
  if ('error' in release) throw new Error(release.error);
  // No BME280 on either: Debian's arm64 kernel has no i2c-stub (see test/vm/README.md), and both VMs run the same.
  writeBoard(share, GUEST_UART[arch], false);
  const vm = await Vm.boot(
    {
      image,
      workDir: dir,
      share,
      arch,
      guestForwards: [{ guestPort: GUEST_BROKER_PORT, hostPort: cloud.broker.port }],
    },
    (line) => console.log(`${arch}: ${line}`),
  );
  const installStarted = Date.now();
  const install = await installRelease(vm, TARGET[arch]);
  if (install.code !== 0) throw new Error(`${arch}: install.sh exited ${install.code}: ${install.output.slice(-2000)}`);
  const installMs = Date.now() - installStarted;
  console.log(`${arch}: cold boot ${vm.lastBootMs} ms, install.sh to READY ${installMs} ms`);
  return { arch, vm, coldBootMs: vm.lastBootMs, installMs, bootMs: [], readyMs: [], guestReadyMs: [] };
}

async function rebootToReady(m: Measured): Promise<void> {
  await m.vm.reboot();
  const agentAt = Date.now();
  let active = false;
  while (!active && Date.now() - agentAt < READY_WAIT_MS) {
    active = (await m.vm.exec('systemctl is-active --quiet outpost')).code === 0;
    if (!active) await new Promise((r) => setTimeout(r, READY_POLL_MS));
  }
  if (!active) throw new Error(`${m.arch}: the unit was not active within ${READY_WAIT_MS} ms of the agent`);
  const readyMs = m.vm.lastBootMs + (Date.now() - agentAt);
  const enteredUs = await m.vm.mustExec('systemctl show -p ActiveEnterTimestampMonotonic --value outpost');
  const guestUs = Number(enteredUs.trim());
  m.bootMs.push(m.vm.lastBootMs);
  m.readyMs.push(readyMs);
  m.guestReadyMs.push(Math.round(guestUs / 1000));
  console.log(
    `${m.arch}: reboot ${m.bootMs.length}: agent ${m.vm.lastBootMs} ms, READY ${readyMs} ms ` +
      `(guest clock ${Math.round(guestUs / 1000)} ms), load ${loadavg()[0]!.toFixed(1)}`,
  );
}

function row(m: Measured): string[] {
  return [
    m.arch,
    fmt(m.coldBootMs),
    fmt(m.installMs),
    fmt(median(m.bootMs)),
    fmt(median(m.readyMs)),
    fmt(median(m.guestReadyMs)),
  ];
}

async function run(): Promise<void> {
  const boots = envInt('OUTPOST_BENCH_VM_ARM64_BOOTS', BOOTS_DEFAULT);
  if (spawnSync('aarch64-linux-gnu-g++', ['--version']).error !== undefined) {
    console.log('vm-arm64: skipped: no aarch64-linux-gnu-g++ for the arm64 release (scripts/install-release-deps.sh)');
    return;
  }
  // The arm64 image build is part of the cost: from scratch on a fresh $OUTPOST_VM_ARM64_CACHE, seconds if cached.
  const imageStarted = performance.now();
  const images = { arm64: await vmImage('arm64'), amd64: await vmImage('amd64') };
  const imageSecs = Math.round((performance.now() - imageStarted) / 1000);
  console.log(`vm-arm64: images ready in ${imageSecs} s`);
  for (const [arch, built] of Object.entries(images)) {
    if ('skip' in built) {
      console.log(`vm-arm64: skipped: the ${arch} VM: ${built.skip}`);
      return;
    }
  }
  const started = performance.now();
  const work = await mkdtemp(join(tmpdir(), 'outpost-bench-vm-arm64-'));
  const cloud = await Cloud.start([{ deviceId: 'child-1', key: newKey() }]);
  const vms: Measured[] = [];
  try {
    for (const arch of ['arm64', 'amd64'] as const) {
      const built = images[arch] as { image: string };
      vms.push(await startVm(arch, built.image, work, cloud));
    }
    for (let i = 0; i < boots; i++) for (const m of vms) await rebootToReady(m);
  } finally {
    for (const m of vms) await m.vm.kill();
    await cloud.stop();
    await rm(work, { recursive: true, force: true });
  }
  const [arm, x64] = vms as [Measured, Measured];
  console.log(
    formatTable(
      ['VM', 'cold boot ms', 'install.sh to READY ms', 'reboot: agent ms', 'reboot: READY ms', 'READY, guest clock ms'],
      vms.map(row),
    ),
  );
  console.log(
    JSON.stringify({
      boots,
      imageSecs,
      arm64ColdBootMs: arm.coldBootMs,
      arm64InstallMs: arm.installMs,
      arm64BootMs: median(arm.bootMs),
      arm64ReadyMs: median(arm.readyMs),
      x64BootMs: median(x64.bootMs),
      x64ReadyMs: median(x64.readyMs),
      readyRatio: Math.round((median(arm.readyMs) / median(x64.readyMs)) * 100) / 100,
      secs: Math.round((performance.now() - started) / 1000),
    }),
  );
}

const vmArm64: BenchModule = {
  run,
  child: async (role) => {
    throw new Error(`vm-arm64 bench has no child role "${role}"`);
  },
};
export default vmArm64;
