import type { Clock } from '../clock.js';

/**
 * Counts every refusal of the hub by reason (for `outpost status` and /metrics) and reports them in a
 * rate-limited summary that names the client ids and addresses: the first refusal after a quiet period is
 * reported at once, everything after it is gathered and reported once per interval, so a flood of ten
 * thousand refused connections is a few lines in the journal, not ten thousand.
 */

/** At most one summary per this period, ms: a flood costs a line per period, and an operator still sees it soon. */
export const REFUSAL_SUMMARY_INTERVAL_MS = 30_000;
/** Distinct (reason, client id, address) sources remembered per period; past it, they are only counted. */
export const REFUSAL_SOURCES_MAX = 256;
/** Sources a summary names, the busiest first: a summary is one journal line. */
export const REFUSAL_SUMMARY_SOURCES_MAX = 8;
/** A client id is the client's own text: cut it to keep the summary line bounded. */
const CLIENT_ID_CHARS_MAX = 64;

export interface RefusalSource {
  clientId?: string;
  address?: string;
}

interface Tally<Reason> {
  reason: Reason;
  source: string;
  count: number;
}

export class RefusalLog<Reason extends string> {
  readonly totals = new Map<Reason, number>();
  private readonly window = new Map<string, Tally<Reason>>();
  private windowCount = 0;
  private lastSummaryMonoMs = -Infinity;
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly clock: Clock,
    private readonly onSummary: (text: string) => void,
    /** What an operator can do about a reason, named once per summary (the limit to raise, say). */
    private readonly hints: Partial<Record<Reason, string>> = {},
    private readonly intervalMs = REFUSAL_SUMMARY_INTERVAL_MS,
  ) {}

  count(reason: Reason, from: RefusalSource = {}): void {
    this.totals.set(reason, (this.totals.get(reason) ?? 0) + 1);
    const source = describe(from);
    const key = `${reason}\u0000${source}`;
    const tally = this.window.get(key);
    if (tally !== undefined) tally.count += 1;
    else if (this.window.size < REFUSAL_SOURCES_MAX) this.window.set(key, { reason, source, count: 1 });
    this.windowCount += 1;
    if (this.timer !== null) return;
    const waitMs = this.lastSummaryMonoMs + this.intervalMs - this.clock.monoMs();
    if (waitMs <= 0) return this.flush();
    this.timer = setTimeout(() => this.flush(), waitMs);
    this.timer.unref();
  }

  /** Reports what was gathered since the last summary, if anything. */
  flush(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    if (this.windowCount === 0) return;
    const tallies = [...this.window.values()].sort((a, b) => b.count - a.count).slice(0, REFUSAL_SUMMARY_SOURCES_MAX);
    const named = tallies.map((t) => `${t.reason} ${t.count}${t.source}`);
    const namedCount = tallies.reduce((n, t) => n + t.count, 0);
    if (namedCount < this.windowCount) named.push(`others ${this.windowCount - namedCount}`);
    const reasons = [...new Set(tallies.map((t) => t.reason))];
    const hints = reasons.flatMap((r) => (this.hints[r] ? [`${r}: ${this.hints[r]}`] : []));
    const hintText = hints.length === 0 ? '' : ` (${hints.join('; ')})`;
    this.onSummary(`hub refused ${this.windowCount} (by reason and source): ${named.join(', ')}${hintText}`);
    this.window.clear();
    this.windowCount = 0;
    this.lastSummaryMonoMs = this.clock.monoMs();
  }

  /** Reports what is left and stops the timer. */
  stop(): void {
    this.flush();
  }
}

function describe(from: RefusalSource): string {
  const id = typeof from.clientId !== 'string' ? '' : ` ${JSON.stringify(from.clientId.slice(0, CLIENT_ID_CHARS_MAX))}`;
  const address = typeof from.address !== 'string' ? '' : ` from ${from.address}`;
  return id === '' && address === '' ? '' : ` (${`${id}${address}`.trim()})`;
}
