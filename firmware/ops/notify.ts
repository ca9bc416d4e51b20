import { spawn, type ChildProcess } from 'node:child_process';

/**
 * systemd's notification protocol (sd_notify(3)) without a native addon.
 *
 * The protocol is one datagram on the AF_UNIX socket named by $NOTIFY_SOCKET, and Node cannot send one:
 * `node:dgram` knows only UDP, `node:net` only stream sockets. The npm options (sd-notify, unix-dgram) are
 * native addons we would have to cross-build and ship for every target, and socat sends without waiting, so
 * systemd may look the sender up after it has exited and drop the message. We spawn systemd-notify(1), which
 * is on every systemd host and since systemd 246 ends each message with a BARRIER=1 handshake: it exits only
 * after the manager has processed the message, so the sender is still alive (and in our cgroup) when systemd
 * attributes it. It is a child of the main process, which is why the unit says NotifyAccess=all: with
 * NotifyAccess=main systemd would drop every message, since the sender's pid is not MAINPID.
 */

/** systemd-notify waits for the manager's barrier up to 5 s itself; past this the child is killed. */
export const NOTIFY_COMMAND_TIMEOUT_MS = 10_000;
/** The command; an absolute path is not assumed because Debian and Raspberry Pi OS differ (/bin vs /usr/bin). */
const NOTIFY_COMMAND = 'systemd-notify';

export interface Notifier {
  /** Sends `KEY=value` fields; fields sent while one message is in flight are merged into the next one. */
  send(fields: Record<string, string>): void;
  /** How often to send WATCHDOG=1, ms (half of WatchdogSec); null when the unit has no watchdog. */
  readonly watchdogIntervalMs: number | null;
  /** Resolves once nothing is in flight (the last STOPPING=1 must not be cut off by exit). */
  flush(): Promise<void>;
}

/** The notifier for this process, or null when not started by systemd with Type=notify. */
export function systemdNotifier(onError: (err: Error) => void, env: NodeJS.ProcessEnv = process.env): Notifier | null {
  if (!env.NOTIFY_SOCKET) return null;
  let pending: Record<string, string> | null = null;
  let inflight: Promise<void> | null = null;

  const run = (fields: Record<string, string>): Promise<void> =>
    new Promise<void>((resolve) => {
      const what = `${NOTIFY_COMMAND} ${Object.keys(fields).join(' ')}`;
      // Out of file descriptors or processes (EMFILE, EAGAIN), spawn throws or hands back a child without
      // pipes: that message is lost, like any datagram systemd did not get, and the next one tries again.
      let child: ChildProcess;
      try {
        child = spawn(
          NOTIFY_COMMAND,
          Object.entries(fields).map(([k, v]) => `${k}=${oneLine(v)}`),
          {
            stdio: ['ignore', 'ignore', 'pipe'],
            env,
            timeout: NOTIFY_COMMAND_TIMEOUT_MS,
          },
        );
      } catch (err) {
        onError(new Error(`${what}: not sent: ${(err as Error).message}`, { cause: err }));
        return resolve();
      }
      let stderr = '';
      // A failed spawn emits 'error' and may then emit 'close' too (with the errno as exit code): one report.
      let failed = false;
      child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-500)));
      child.on('error', (err) => {
        failed = true;
        onError(new Error(`${what}: not sent: ${err.message}`, { cause: err }));
        resolve();
      });
      child.on('close', (code, signal) => {
        if (code !== 0 && !failed) onError(new Error(`${what}: exit ${code ?? signal}: ${stderr.trim()}`));
        resolve();
      });
    });

  const pump = () => {
    if (inflight || !pending) return;
    const fields = pending;
    pending = null;
    inflight = run(fields).then(() => {
      inflight = null;
      pump();
    });
  };

  return {
    send(fields) {
      pending = { ...(pending ?? {}), ...fields };
      pump();
    },
    watchdogIntervalMs: watchdogIntervalMs(env),
    async flush() {
      while (inflight) await inflight;
    },
  };
}

/** Half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises; null when unset or meant for another process. */
export function watchdogIntervalMs(env: NodeJS.ProcessEnv): number | null {
  const usec = Number(env.WATCHDOG_USEC);
  if (!Number.isFinite(usec) || usec <= 0) return null;
  if (env.WATCHDOG_PID && Number(env.WATCHDOG_PID) !== process.pid) return null;
  return Math.max(1, Math.floor(usec / 2000));
}

/** A field value is one line of the datagram: a newline would start a new field. */
function oneLine(value: string): string {
  return value.replace(/[\r\n]+/g, ' ');
}
