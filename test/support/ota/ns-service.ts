import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chownSync, mkdirSync, readFileSync } from 'node:fs';
import { once } from 'node:events';

/**
 * What systemd does for the installed unit, inside the test's mount namespace (no systemd runs there):
 * StateDirectory= and RuntimeDirectory=, ExecStart (the launcher) as User=outpost with the unit's
 * Environment=, and Restart=always. RestartSec is 2 s in the unit; here 300 ms, so a crash loop of a broken
 * release takes a second, not ten.
 */
export const RESTART_MS = 300;
/** Starts in one test run; more is a restart loop the launcher failed to end. */
const STARTS_MAX = 40;

export class Service {
  /** Each start's output (stdout and stderr), in order. */
  readonly runs: string[] = [];
  private proc: ChildProcess | null = null;
  private stopping = false;

  constructor(
    private readonly logFile: string,
    private readonly runtimeDir: string,
  ) {}

  start(): void {
    const id = (flag: string) => Number(spawnSync('id', [flag, 'outpost'], { encoding: 'utf8' }).stdout.trim());
    const [uid, gid] = [id('-u'), id('-g')];
    mkdirSync('/var/lib/outpost', { recursive: true, mode: 0o750 });
    chownSync('/var/lib/outpost', uid, gid);
    chownSync(this.runtimeDir, uid, gid);
    const index = this.runs.push('') - 1;
    const env = [
      'OUTPOST_DATA_DIR=/var/lib/outpost',
      'NODE_ENV=production',
      `RUNTIME_DIRECTORY=${this.runtimeDir}`,
      'OUTPOST_HUB_PORT=0',
      'PATH=/usr/bin:/bin',
    ];
    const asUser = ['--reuid', 'outpost', '--regid', 'outpost', '--init-groups', '--reset-env'];
    const execStart = ['/opt/outpost/launch', 'run', '--board', '/etc/outpost/board.json'];
    const stdio = ['ignore', 'pipe', 'pipe'] as const;
    const proc = spawn('setpriv', [...asUser, 'env', ...env, ...execStart], { cwd: '/', stdio: [...stdio] });
    const add = (d: Buffer) => {
      this.runs[index] += d.toString();
      appendFileSync(this.logFile, d);
    };
    proc.stdout!.on('data', add);
    proc.stderr!.on('data', add);
    proc.on('exit', (code, signal) => {
      appendFileSync(this.logFile, `--- start ${index + 1} ended: ${signal ?? `exit ${code}`}\n`);
      if (this.proc === proc) this.proc = null;
      // A loop the launcher does not end is reported by the waits that time out, not by a throw here.
      if (!this.stopping && this.runs.length < STARTS_MAX) setTimeout(() => this.start(), RESTART_MS);
    });
    this.proc = proc;
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  /** `systemctl restart`: SIGTERM to the main process (the launcher); Restart=always brings it back. */
  async restart(): Promise<void> {
    const proc = this.proc;
    if (proc === null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
  }

  signal(signal: NodeJS.Signals): void {
    this.proc?.kill(signal);
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const proc = this.proc;
    if (proc === null) return;
    const exited = once(proc, 'exit');
    proc.kill('SIGTERM');
    await exited;
  }

  /** The output of the start now running (or the last one). */
  get current(): string {
    return this.runs[this.runs.length - 1] ?? '';
  }

  log(): string {
    return readFileSync(this.logFile, 'utf8');
  }
}

/** Polls `condition` until it holds or `timeoutMs` passes (then throws with `what` and `detail()`). */
export async function waitUntil(
  what: string,
  condition: () => boolean,
  timeoutMs: number,
  detail: () => string = () => '',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}\n${detail()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
