import type { StatusReport } from '../ops/report.js';

/** Samples kept for the backlog chart: at one a second, the last 10 minutes (a site visit's worth). */
export const HISTORY_SAMPLES_MAX = 600;

export interface HistorySample {
  atWallMs: number;
  records: number;
  bytes: number;
  drainPerSec: number;
}

/** A bounded in-memory ring of backlog samples; lost on restart, which a chart of recent minutes can afford. */
export class BacklogHistory {
  private readonly samples: HistorySample[] = [];

  add(report: StatusReport, atWallMs = Date.now()): void {
    const records = report.lanes.reduce((n, l) => n + l.records, 0);
    const bytes = report.lanes.reduce((n, l) => n + l.bytes, 0);
    this.samples.push({ atWallMs, records, bytes, drainPerSec: report.drain.ratePerSec });
    if (this.samples.length > HISTORY_SAMPLES_MAX) this.samples.shift();
  }

  list(): HistorySample[] {
    return [...this.samples];
  }
}
