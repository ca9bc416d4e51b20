import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';

/** socat prints this once both ptys exist and their links are in place. */
const SOCAT_READY_TEXT = 'starting data transfer loop';
/** How long socat may take to start or stop before the test fails instead of hanging. */
export const PTY_START_MS_MAX = 5_000;
export const PTY_STOP_MS_MAX = 5_000;
const SOCAT_PATH = '/usr/bin/socat';

/**
 * A linked pseudo-terminal pair made by socat: bytes written to one end come out of the other, as on a
 * null-modem cable. `devicePath` is what the driver opens; `peerPath` is where the test plays the device.
 * stop() kills socat (both ends vanish, like an unplugged USB adapter); start() brings them back at the
 * same paths.
 */
export class PtyPair {
  readonly devicePath: string;
  readonly peerPath: string;
  private child: ChildProcess | undefined;

  constructor(dir: string) {
    this.devicePath = join(dir, 'device');
    this.peerPath = join(dir, 'peer');
  }

  async start(): Promise<void> {
    if (this.child) throw new Error('socat is already running');
    const child = spawn(
      SOCAT_PATH,
      ['-d', '-d', `pty,raw,echo=0,link=${this.devicePath}`, `pty,raw,echo=0,link=${this.peerPath}`],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      let stderr = '';
      const timer = setTimeout(
        () => fail(new Error(`socat not ready after ${PTY_START_MS_MAX} ms: ${stderr}`)),
        PTY_START_MS_MAX,
      );
      const fail = (error: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        this.child = undefined;
        reject(error);
      };
      child.stderr!.on('data', (chunk: Buffer) => {
        stderr += chunk.toString();
        if (stderr.includes(SOCAT_READY_TEXT)) {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once('exit', (code) => fail(new Error(`socat exited with ${code}: ${stderr}`)));
      child.once('error', fail);
    });
    child.removeAllListeners('exit');
    child.stderr!.resume();
  }

  /** Kills socat and waits for it to exit (it removes the links on the way out). */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode !== null || child.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        resolve();
      }, PTY_STOP_MS_MAX);
      child.once('exit', () => {
        clearTimeout(timer);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}

/** Polls `predicate` every few ms until it holds; fails after `timeoutMs` so no test can hang. */
export async function waitFor(what: string, predicate: () => boolean, timeoutMs = 5_000): Promise<void> {
  const POLL_MS = 20;
  for (let waitedMs = 0; waitedMs < timeoutMs; waitedMs += POLL_MS) {
    if (predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
  if (!predicate()) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
