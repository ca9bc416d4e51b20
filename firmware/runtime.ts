import { RingLog } from './store/log.js';
import type { RingLogOptions } from './store/options.js';
import type { LogStats } from './store/types.js';

/** The lane everything bound for the cloud goes through, in stored order. */
export const UPSTREAM_LANE = 'upstream';
/** How often the status line is printed while running, ms. */
export const STATUS_INTERVAL_MS = 5000;

export interface RuntimeConfig {
  variant: string;
  gatewayId: string;
  storage: RingLogOptions;
}

export interface RuntimeStatus {
  variant: string;
  gatewayId: string;
  link: 'up' | 'down' | 'disabled';
  store: LogStats;
}

/** Wiring and lifecycle of one gateway process: open the store first, stop in reverse order. */
export class Runtime {
  private log: RingLog | null = null;

  constructor(private readonly config: RuntimeConfig) {}

  async start(): Promise<void> {
    this.log = await RingLog.open(this.config.storage);
    await this.log.lane(UPSTREAM_LANE);
  }

  get store(): RingLog {
    if (!this.log) throw new Error('runtime not started');
    return this.log;
  }

  status(): RuntimeStatus {
    return { variant: this.config.variant, gatewayId: this.config.gatewayId, link: 'disabled', store: this.store.stats() };
  }

  /** Stop intake, flush and checkpoint the log, release files. */
  async stop(): Promise<void> {
    const log = this.log;
    this.log = null;
    await log?.close();
  }
}

export function formatStatus(s: RuntimeStatus): string {
  const up = s.store.lanes.find((l) => l.lane === UPSTREAM_LANE);
  const usedPct = ((100 * s.store.bytesOnDisk) / s.store.quotaBytes).toFixed(1);
  return (
    `outpost ${s.gatewayId} [${s.variant}] link=${s.link} backlog=${up?.pendingRecords ?? 0} rec/${up?.pendingBytes ?? 0} B ` +
    `oldest=${((up?.oldestPendingAgeMs ?? 0) / 1000).toFixed(1)}s disk=${s.store.bytesOnDisk} B (${usedPct}% of quota) ` +
    `expired=${s.store.expiredRecords} dropped=${s.store.droppedRecords} corrupt=${s.store.corruptRecords}`
  );
}
