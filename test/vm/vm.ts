// Boots the field VM (scripts/vm/build-image.sh) under qemu-system-x86_64 or qemu-system-aarch64 and talks to it:
// commands over a virtio-serial control port answered by the guest's vm-agent, a read-only 9p share of a host
// folder, host port forwards into the guest, guest forwards out to host services, and a UART on a host socket
// (a second 16550, ttyS1, on x86; the PL011, ttyAMA0, on arm64).
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { join, resolve } from 'node:path';
import { dataBasePath, GUEST_UART, QEMU_BINARY, qemuArgs, type VmArch, type VmOptions } from './qemu-args.js';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '../..');

export {
  dataBasePath,
  GUEST_HOST_ADDRESS,
  GUEST_UART,
  type PortForward,
  type VmArch,
  type VmOptions,
} from './qemu-args.js';

/**
 * Boot to the agent's first word. Under TCG the kernel + systemd take 20 s on an idle core and 80-240 s when
 * the machine's two cores serve several test runs (a reboot at load 16 took over 240 s).
 */
export const VM_BOOT_TIMEOUT_MS = 480_000;
/** A clean shutdown: systemd stops every unit (the gateway's TimeoutStopSec is 20 s) under the same slow CPU. */
const VM_SHUTDOWN_TIMEOUT_MS = 180_000;
/** One command inside the guest; longer work is started in the background and polled. */
export const VM_EXEC_TIMEOUT_MS = 120_000;
/** qemu making its control socket: instant on an idle host, seconds when two cores serve eight test runs. */
const QEMU_START_TIMEOUT_MS = 60_000;
/**
 * The image build when it is not cached yet: mmdebstrap of a few hundred packages, whose maintainer scripts run
 * under qemu-user for arm64 (several times slower than native).
 */
const IMAGE_BUILD_TIMEOUT_MS = 30 * 60_000;
/** The image builder per architecture: arm64 unpacks its kernel and makes its initrd on the host (see README). */
const IMAGE_BUILDER: Record<VmArch, [string, ...string[]]> = {
  amd64: ['scripts/vm/build-image.sh', 'amd64'],
  arm64: ['scripts/vm/build-image-arm64.sh'],
};

/** Builds (or finds in its cache) the VM image; a reason to skip where this machine cannot. */
export async function vmImage(arch: VmArch = 'amd64'): Promise<{ image: string } | { skip: string }> {
  if (process.platform !== 'linux' || (arch === 'amd64' && process.arch !== 'x64')) {
    return { skip: `the ${arch} field VM needs ${arch === 'amd64' ? 'an x86_64 ' : 'a '}Linux host` };
  }
  try {
    const [script, ...args] = IMAGE_BUILDER[arch];
    const building = run('bash', [join(ROOT, script), ...args], {
      timeout: IMAGE_BUILD_TIMEOUT_MS,
      maxBuffer: 64 << 20,
    });
    // The builder's progress (stderr) as it comes: a first build takes minutes.
    building.child.stderr?.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    const { stdout } = await building;
    const image = stdout.trim().split('\n').pop() ?? '';
    if (!existsSync(join(image, 'done'))) {
      return { skip: `${script} printed no image folder: ${stdout.slice(-200)}` };
    }
    return { image };
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    return { skip: `the VM image could not be built here: ${(e.stderr ?? e.message).slice(-400)}` };
  }
}

export interface ExecResult {
  code: number;
  output: string;
}

export class Vm {
  readonly consolePath: string;
  /** Host unix socket of the guest's UART, `uartDevice` (connect to it to be the device on that UART). */
  readonly uartPath: string;
  /** The guest's tty on `uartPath`. */
  readonly uartDevice: string;
  private readonly ctlPath: string;
  private ctl: net.Socket | undefined;
  private buffered = '';
  private nextId = 1;
  private readonly waiting = new Map<string, (r: ExecResult) => void>();
  private readyWaiters: Array<(bootId: string) => void> = [];
  private lastBootId = '';
  /** Host milliseconds from qemu's start to the agent's first word, for the last boot (boot or reboot). */
  lastBootMs = 0;
  private qemu!: ChildProcess;
  private exited!: Promise<number | null>;

  private constructor(
    private readonly args: string[],
    workDir: string,
    private readonly shared: boolean,
    private readonly log: (line: string) => void,
    private readonly arch: VmArch,
  ) {
    this.consolePath = join(workDir, 'console.log');
    this.uartPath = join(workDir, 'uart1.sock');
    this.uartDevice = GUEST_UART[arch];
    this.ctlPath = join(workDir, 'ctl.sock');
  }

  private launch(): void {
    const qemu = spawn(QEMU_BINARY[this.arch], this.args, { stdio: ['ignore', 'ignore', 'pipe'] });
    qemu.stderr?.on('data', (d: Buffer) => this.log(`qemu: ${d.toString().trim()}`));
    this.qemu = qemu;
    this.exited = new Promise((res) => qemu.once('exit', (code) => res(code)));
  }

  static async boot(opts: VmOptions, log: (line: string) => void = () => {}): Promise<Vm> {
    const overlay = join(opts.workDir, 'root.qcow2');
    if (!existsSync(overlay)) {
      await run('qemu-img', ['create', '-q', '-f', 'qcow2', '-F', 'raw', '-b', join(opts.image, 'root.ext4'), overlay]);
    }
    const data = join(opts.workDir, 'data.ext4');
    if (!existsSync(data)) {
      await run('truncate', ['-s', `${opts.dataDiskMiB ?? 256}M`, data]);
      await run('mke2fs', ['-q', '-t', 'ext4', '-L', 'outpost-data', data]);
    }
    if (opts.dataLogPath) {
      await run('cp', ['--sparse=always', data, dataBasePath(opts.workDir)]);
      await run('truncate', ['-s', '0', opts.dataLogPath]);
    }
    const vm = new Vm(qemuArgs(opts, overlay, data), opts.workDir, opts.share !== undefined, log, opts.arch ?? 'amd64');
    vm.launch();
    log(`vm: booting ${opts.image} (${QEMU_BINARY[opts.arch ?? 'amd64']}, TCG)`);
    const started = Date.now();
    await vm.connect();
    await vm.waitReady('', VM_BOOT_TIMEOUT_MS);
    vm.lastBootMs = Date.now() - started;
    log(`vm: agent ready after ${vm.lastBootMs} ms`);
    await vm.mountShare();
    return vm;
  }

  /** Runs a bash script in the guest as root. */
  exec(script: string, timeoutMs = VM_EXEC_TIMEOUT_MS): Promise<ExecResult> {
    const id = String(this.nextId++);
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        rej(new Error(`vm: command timed out after ${timeoutMs} ms: ${script.slice(0, 200)}`));
      }, timeoutMs);
      this.waiting.set(id, (r) => {
        clearTimeout(timer);
        res(r);
      });
      this.ctl?.write(`${id} ${Buffer.from(script).toString('base64')}\n`);
    });
  }

  /** exec that fails with the guest's output when the script fails. */
  async mustExec(script: string, timeoutMs = VM_EXEC_TIMEOUT_MS): Promise<string> {
    const r = await this.exec(script, timeoutMs);
    if (r.code !== 0) throw new Error(`vm: \`${script.slice(0, 300)}\` exited ${r.code}:\n${r.output.slice(-3000)}`);
    return r.output;
  }

  /** Polls a guest command until it succeeds; the last result is returned either way. */
  async until(script: string, timeoutMs: number, intervalMs = 500): Promise<ExecResult> {
    const deadline = Date.now() + timeoutMs;
    let last: ExecResult = { code: -1, output: '' };
    while (Date.now() < deadline) {
      last = await this.exec(script);
      if (last.code === 0) return last;
      await new Promise((r) => setTimeout(r, intervalMs));
    }
    return last;
  }

  /**
   * Reboots the guest and waits for the agent of the new boot: a clean `systemctl reboot`, after which qemu
   * (-no-reboot) exits and is started again on the same disks, as a Pi's power cycle would. Not a warm reset:
   * under TCG on a loaded host the kernel after one found no 8254 timer interrupt ("MP-BIOS bug") and its
   * udev workers sat in soft lockups for minutes, so a reboot missed its bound where a cold boot never did.
   */
  async reboot(): Promise<void> {
    const before = this.lastBootId;
    this.ctl?.write(`${this.nextId++} ${Buffer.from('systemctl reboot').toString('base64')}\n`);
    // The bound's timer is cleared once the guest is down: left pending, it kept the bench's process alive for
    // up to VM_SHUTDOWN_TIMEOUT_MS after its last line.
    let bound: NodeJS.Timeout | undefined;
    const down = await Promise.race([
      this.exited.then(() => true),
      new Promise<false>((r) => (bound = setTimeout(() => r(false), VM_SHUTDOWN_TIMEOUT_MS))),
    ]);
    clearTimeout(bound);
    if (!down) this.log(`vm: the shutdown took over ${VM_SHUTDOWN_TIMEOUT_MS} ms; powering off`);
    await this.kill();
    this.launch();
    const started = Date.now();
    await this.connect();
    await this.waitReady(before, VM_BOOT_TIMEOUT_MS);
    this.lastBootMs = Date.now() - started;
    this.log(`vm: agent ready after ${this.lastBootMs} ms (reboot)`);
    await this.mountShare();
  }

  private async mountShare(): Promise<void> {
    if (!this.shared) return;
    await this.mustExec('mkdir -p /mnt/host && mount -t 9p -o trans=virtio,version=9p2000.L,ro host /mnt/host');
  }

  console(): string {
    return existsSync(this.consolePath) ? readFileSync(this.consolePath, 'utf8') : '';
  }

  /** Powers the VM off at once (qemu killed: the guest gets no shutdown). */
  async kill(): Promise<void> {
    this.ctl?.destroy();
    if (this.qemu.exitCode === null) this.qemu.kill('SIGKILL');
    await this.exited;
  }

  private async connect(): Promise<void> {
    const deadline = Date.now() + QEMU_START_TIMEOUT_MS;
    for (;;) {
      try {
        this.ctl = await new Promise<net.Socket>((res, rej) => {
          const s = net.connect(this.ctlPath, () => res(s));
          s.once('error', rej);
        });
        break;
      } catch (err) {
        if (Date.now() > deadline || this.qemu.exitCode !== null) {
          throw new Error(`vm: qemu did not start: ${String(err)}`);
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    this.ctl.setEncoding('utf8');
    this.buffered = '';
    this.ctl.on('data', (chunk: string) => this.onData(chunk));
    this.ctl.on('error', () => {});
  }

  private onData(chunk: string): void {
    this.buffered += chunk;
    let nl: number;
    while ((nl = this.buffered.indexOf('\n')) >= 0) {
      const line = this.buffered.slice(0, nl);
      this.buffered = this.buffered.slice(nl + 1);
      const ready = /^AGENT-READY (\S+)/.exec(line);
      if (ready) {
        this.lastBootId = ready[1];
        for (const w of this.readyWaiters.splice(0)) w(ready[1]);
        continue;
      }
      const m = /^(\d+) (\d+) (\S*)$/.exec(line);
      const done = m ? this.waiting.get(m[1]) : undefined;
      if (m && done) {
        this.waiting.delete(m[1]);
        done({ code: Number(m[2]), output: Buffer.from(m[3], 'base64').toString('utf8') });
      }
    }
  }

  private waitReady(notBootId: string, timeoutMs: number): Promise<string> {
    if (this.lastBootId && this.lastBootId !== notBootId) return Promise.resolve(this.lastBootId);
    return new Promise((res, rej) => {
      const tail = (): string => this.console().slice(-3000);
      const timer = setTimeout(
        () => rej(new Error(`vm: no agent within ${timeoutMs} ms; console:\n${tail()}`)),
        timeoutMs,
      );
      const waiter = (bootId: string): void => {
        if (bootId === notBootId) {
          this.readyWaiters.push(waiter);
          return;
        }
        clearTimeout(timer);
        res(bootId);
      };
      this.readyWaiters.push(waiter);
      void this.exited.then((code) => {
        clearTimeout(timer);
        rej(new Error(`vm: qemu exited (${code}); console:\n${tail()}`));
      });
    });
  }
}

/** Whether the arch's qemu-system binary is installed (the image build installs it when it can). */
export function haveQemu(arch: VmArch = 'amd64'): boolean {
  return spawnSync(QEMU_BINARY[arch], ['--version']).status === 0;
}
