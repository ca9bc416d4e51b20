import { basename, dirname, join } from 'node:path';
import { commitPending, readPending, readResult, type UpdateResult } from './pending.js';
import type { ReleaseLayout } from './slots.js';

/** How often the link is looked at while an update waits for its commit: one cheap status read. */
const HEALTH_POLL_MS = 500;

/**
 * The slot layout this bundle runs from: `<prefix>/releases/<version>/outpost.js` (Node resolves the
 * `current` links to the real folder). Null when it runs from anywhere else (the repository, an unpacked
 * tarball): such a gateway is not updated over the air.
 */
export function releaseLayoutOf(bundleDir: string, dataDir: string): ReleaseLayout | null {
  const releasesDir = dirname(bundleDir);
  if (basename(releasesDir) !== 'releases') return null;
  return { releasesDir, stateDir: join(dataDir, 'ota') };
}

export interface HealthOptions {
  layout: ReleaseLayout;
  /** This release's version. */
  version: string;
  /** Connected to the cloud (link up or resyncing); when no uplink is configured, always true. */
  isConnected: () => boolean;
  log: (result: UpdateResult) => void;
  /** A commit that failed (a full or read-only disk): left to the launcher's deadline, which rolls back. */
  warn: (err: Error) => void;
}

export interface HealthWatch {
  /** Resolves true once committed, false when there was nothing to commit or the watch was stopped. */
  readonly done: Promise<boolean>;
  stop(): void;
}

/**
 * Commits this release's pending update once it is healthy. Called after READY, so the store is open and the
 * hub listens; what is left is the cloud connection. Only a commit is decided here: the deadline and the
 * rollback belong to the launcher (scripts/pack/ota-launch.sh), which does not trust this code.
 */
export function watchUpdateHealth(opts: HealthOptions): HealthWatch {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  const done = (async () => {
    const pending = await readPending(opts.layout.stateDir);
    if (pending === null || pending.version !== opts.version) return false;
    while (!stopped && !opts.isConnected()) {
      await new Promise<void>((resolve) => {
        wake = resolve;
        timer = setTimeout(resolve, HEALTH_POLL_MS);
      });
    }
    if (stopped) return false;
    await commitPending(opts.layout.stateDir, pending);
    const result = await readResult(opts.layout.stateDir);
    if (result) opts.log(result);
    return true;
  })().catch((err: unknown) => {
    opts.warn(err as Error);
    return false;
  });
  return {
    done,
    stop() {
      stopped = true;
      clearTimeout(timer);
      wake?.();
    },
  };
}

/**
 * For main.ts: in a slot layout, logs how the last update ended (a rollback's reason reaches the journal of
 * the release it fell back to) and watches this release's pending update, if any.
 */
export async function startUpdateHealth(
  bundleDir: string,
  dataDir: string,
  version: string,
  isConnected: () => boolean,
  logger: { info(obj: object, msg: string): void; warn(obj: object, msg: string): void },
): Promise<HealthWatch | null> {
  const layout = releaseLayoutOf(bundleDir, dataDir);
  if (layout === null) return null;
  const last = await readResult(layout.stateDir);
  if (last?.state === 'rolled-back') {
    logger.warn({ update: last }, `outpost update: ${last.version} was rolled back to ${last.from}: ${last.reason}`);
  }
  return watchUpdateHealth({
    layout,
    version,
    isConnected,
    log: (r) => logger.info({ update: r }, `outpost update: ${r.version} committed (from ${r.from})`),
    warn: (err) => logger.warn({ err }, `outpost update: the commit of ${version} failed: ${err.message}`),
  });
}
