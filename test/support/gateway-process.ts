import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { bundleForChild } from './bundle.js';

/** Shared by the ops tests: the bundled gateway as a child process, its stdout collected as JSON lines. */

/** A gateway that has not said "outpost ready" by then is broken, not slow. */
export const READY_TIMEOUT_MS = 30_000;
/** How long a stop may take before the test gives up on the child (main.ts's own bound is 15 s). */
export const EXIT_TIMEOUT_MS = 30_000;

const MAIN = fileURLToPath(new URL('../../firmware/main.ts', import.meta.url));

export function bundleGateway(tag: string): Promise<string> {
  return bundleForChild(MAIN, tag);
}

export interface GatewayProcess {
  proc: ChildProcess;
  /** Everything printed so far, stdout and stderr. */
  output(): string;
  /** Parsed JSON log lines from stdout so far. */
  lines(): Array<Record<string, unknown>>;
  /** Resolves with the first log line matching, or rejects after `timeoutMs`. */
  waitFor(
    match: (line: Record<string, unknown>) => boolean,
    what: string,
    timeoutMs?: number,
  ): Promise<Record<string, unknown>>;
  /** Resolves with the exit code (null when killed by a signal); SIGKILLs after EXIT_TIMEOUT_MS. */
  exited(): Promise<number | null>;
}

export function startGateway(bundle: string, args: string[], env: NodeJS.ProcessEnv): GatewayProcess {
  const proc = spawn(process.execPath, [bundle, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const parsed: Array<Record<string, unknown>> = [];
  let partial = '';
  const waiters = new Set<() => void>();
  proc.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
    partial += d.toString();
    const complete = partial.split('\n');
    partial = complete.pop()!;
    for (const line of complete) {
      try {
        parsed.push(JSON.parse(line) as Record<string, unknown>);
      } catch {
        parsed.push({ unparsed: line });
      }
    }
    for (const w of waiters) w();
  });
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exit = once(proc, 'exit').then(([code]) => code as number | null);
  return {
    proc,
    output: () => out,
    lines: () => parsed,
    waitFor(match, what, timeoutMs = READY_TIMEOUT_MS) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const hit = parsed.find(match);
          if (!hit) return;
          cleanup();
          resolve(hit);
        };
        const timer = setTimeout(
          () => (cleanup(), reject(new Error(`timed out waiting for ${what}:\n${out}`))),
          timeoutMs,
        );
        const onExit = () => (cleanup(), reject(new Error(`gateway exited while waiting for ${what}:\n${out}`)));
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          proc.off('exit', onExit);
        };
        waiters.add(check);
        proc.once('exit', onExit);
        check();
      });
    },
    async exited() {
      const timer = setTimeout(() => proc.kill('SIGKILL'), EXIT_TIMEOUT_MS);
      const code = await exit;
      clearTimeout(timer);
      return code;
    },
  };
}

export const isReady = (line: Record<string, unknown>): boolean => String(line.msg ?? '').startsWith('outpost ready');
