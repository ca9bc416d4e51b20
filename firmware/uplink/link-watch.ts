import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { UplinkError } from './types.js';

/**
 * Notices the moment the uplink can work again, so the pump reconnects at once instead of sleeping out its
 * backoff (edgeHub waits up to 60 s). Two sources:
 *
 * - the kernel's view of each interface, `/sys/class/net/<if>/operstate` and `carrier`. sysfs attributes
 *   raise no inotify events, so they are polled; two small reads per interface per poll cost next to nothing.
 * - a modem hook: a file the dialer touches when it gets an address (a ppp `ip-up.d` script, a
 *   ModemManager dispatcher, `touch /run/outpost/link-up`); a new mtime counts as "link up".
 *
 * Signals (SIGUSR2) and other callbacks reach the pump's `wake()` directly; main wires those.
 */
export interface LinkWatchOptions {
  /** Interfaces to watch, e.g. `["eth0", "wwan0"]`. */
  interfaces: string[];
  /** Where the interface directories live. Default `/sys/class/net`; tests pass a temp dir. */
  sysClassNetDir?: string;
  /** A file the modem hook touches on link-up; absent means no modem hook. */
  modemFlagPath?: string;
  /** Poll period, ms. Default 200 (well inside the 1 s link-up → first message target). */
  pollMs?: number;
  /** Called when an interface goes from down to up, or the modem flag is touched. */
  onUp: (reason: string) => void;
  /** Called when an interface goes from up to down. */
  onDown?: (reason: string) => void;
}

export const SYS_CLASS_NET_DIR = '/sys/class/net';
/**
 * Interface poll period when none is given, ms: a link-up is seen within 200 ms, well inside the 1 s link-up
 * to first message target, for 10 small sysfs reads a second per interface.
 */
const LINK_POLL_MS_DEFAULT = 200;
/** Each watched interface costs two reads per poll; this bounds the work. */
const LINK_INTERFACES_MAX = 16;

export interface LinkWatch {
  /** Last seen state per interface. */
  states(): Record<string, 'up' | 'down'>;
  stop(): void;
}

/** Reads an interface's state; a missing interface is down. */
export async function interfaceUp(sysClassNetDir: string, name: string): Promise<boolean> {
  const read = (file: string) =>
    readFile(path.join(sysClassNetDir, name, file), 'utf8').then(
      (s) => s.trim(),
      () => '',
    );
  const [operstate, carrier] = await Promise.all([read('operstate'), read('carrier')]);
  // ppp and some cellular drivers never leave "unknown"; for those the carrier is the only truth.
  return operstate === 'up' || (operstate === 'unknown' && carrier === '1');
}

export function watchLink(opts: LinkWatchOptions): LinkWatch {
  const dir = opts.sysClassNetDir ?? SYS_CLASS_NET_DIR;
  const pollMs = opts.pollMs ?? LINK_POLL_MS_DEFAULT;
  if (opts.interfaces.length > LINK_INTERFACES_MAX) {
    throw new UplinkError(
      'INVALID',
      `"interfaces" may list at most ${LINK_INTERFACES_MAX}, got ${opts.interfaces.length}`,
    );
  }
  if (!Number.isInteger(pollMs) || pollMs < 10 || pollMs > 60_000) {
    throw new UplinkError('INVALID', `"pollMs" must be an integer from 10 to 60000 ms, got ${pollMs}`);
  }
  const states: Record<string, 'up' | 'down'> = {};
  let flagMtimeMs: number | null = null;
  let polling = false;

  async function poll(): Promise<void> {
    for (const name of opts.interfaces) {
      const now = (await interfaceUp(dir, name)) ? 'up' : 'down';
      const before = states[name];
      states[name] = now;
      // The first reading is a baseline: a link that was already up at start is no news.
      if (before === 'down' && now === 'up') opts.onUp(`${name} up`);
      if (before === 'up' && now === 'down') opts.onDown?.(`${name} down`);
    }
    if (opts.modemFlagPath !== undefined) {
      const mtime = await stat(opts.modemFlagPath).then(
        (s) => s.mtimeMs,
        () => null,
      );
      if (mtime !== null && flagMtimeMs !== null && mtime !== flagMtimeMs) opts.onUp('modem hook');
      if (mtime !== null) flagMtimeMs = mtime;
      else flagMtimeMs ??= 0;
    }
  }

  const tick = () => {
    if (polling) return;
    polling = true;
    poll().finally(() => (polling = false));
  };
  tick();
  const timer = setInterval(tick, pollMs);
  timer.unref();
  return { states: () => ({ ...states }), stop: () => clearInterval(timer) };
}
