import type { UpdateStatus } from '../ota/state.js';
import type { RuntimeStatus } from '../runtime.js';
import { scrubText } from '../log/redact.js';
import type { EdgeHubModuleStatus, ProvisioningStatus } from '../uplink/provisioning/index.js';
import type { CloudRelayStatus } from '../uplink/edge/cloud.js';

/** Errors kept for `outpost status`: enough to see a pattern, bounded so a flapping link cannot grow memory. */
export const RECENT_ERRORS_MAX = 20;
/** Error text is cut here: one line per error in the status output. */
const ERROR_MESSAGE_CHARS_MAX = 300;
/** Ingest samples kept; with one sample a second this is the rate's window. */
export const INGEST_SAMPLES_MAX = 30;

export interface RecentError {
  atWallMs: number;
  source: string;
  message: string;
}

/** A bounded ring of the latest errors, already scrubbed of secrets. */
export class RecentErrors {
  private readonly items: RecentError[] = [];
  total = 0;

  add(source: string, err: unknown, atWallMs = Date.now()): void {
    const text = err instanceof Error ? err.message : String(err);
    this.items.push({ atWallMs, source, message: scrubText(text).slice(0, ERROR_MESSAGE_CHARS_MAX) });
    if (this.items.length > RECENT_ERRORS_MAX) this.items.shift();
    this.total++;
  }

  list(): RecentError[] {
    return [...this.items];
  }
}

/** Records appended per second over the last INGEST_SAMPLES_MAX samples (sum of every lane's last seq). */
export class IngestRate {
  private readonly samples: Array<{ monoMs: number; appended: number }> = [];

  sample(status: RuntimeStatus, monoMs: number): void {
    const appended = status.store.lanes.reduce((sum, lane) => sum + lane.lastSeq, 0);
    this.samples.push({ monoMs, appended });
    if (this.samples.length > INGEST_SAMPLES_MAX) this.samples.shift();
  }

  perSec(): number {
    const first = this.samples[0];
    const last = this.samples[this.samples.length - 1];
    if (!first || !last || last.monoMs <= first.monoMs) return 0;
    return Math.max(0, ((last.appended - first.appended) * 1000) / (last.monoMs - first.monoMs));
  }
}

export interface StatusReport {
  gatewayId: string;
  variant: string;
  pid: number;
  uptimeSecs: number;
  link: string;
  protocol: string;
  lastUplinkError: { message: string; atWallMs: number } | null;
  lanes: Array<{ lane: string; records: number; bytes: number; oldestAgeSecs: number }>;
  drain: { ratePerSec: number; etaSecs: number | null };
  ingest: { ratePerSec: number; bytesPerSec: number };
  quota: {
    usedBytes: number;
    quotaBytes: number;
    usedPct: number;
    /** Time until the quota is full at the current net growth; null when the log is not growing. */
    lastsSecs: number | null;
    ttlSecs: number;
    /** Which limit removes data first: `ttl` (records expire before the quota fills) or `quota`. */
    limitedBy: 'ttl' | 'quota' | 'none';
  };
  counters: { expired: number; dropped: number; corrupt: number };
  /** Messages the cloud would not take, moved to the `deadletter` lane since start, by reason. */
  deadLetters: { total: number; byReason: Record<string, number> };
  /** Connections the cloud ended with a throttling answer (server busy, quota, rate) since start, by reason. */
  throttled: { total: number; byReason: Record<string, number> };
  children: string[];
  /** Hub refusals since start, by reason (auth failures, ACL, packet size, rate, connection floods, ...). */
  hubRefusals: Record<string, number>;
  devices: { ok: number; faulted: Array<{ id: string; error: string | null }> };
  errors: RecentError[];
  metricsPort: number | null;
  /** The technician page (firmware/page) when enabled: its port and what it refused. */
  page: PageCounters | null;
  /** azure with DPS (uplink.provisioning): the registration and the identity in use. */
  provisioning: (ProvisioningStatus & { edgeHub?: EdgeHubModuleStatus }) | null;
  /** Edge mode: children's upstream connections, identities parked in the holding lane, identities IoT Hub refuses. */
  edge: {
    connections: number;
    connecting: number;
    backoff: number;
    parked: number;
    refused: string[];
    /** Dead letters of refused identities sent again since start, and identities whose letters still wait. */
    resent: number;
    resendWaiting: number;
    /** Cloud → child: C2D messages held for children's PUBACKs, method calls relayed. */
    cloud?: CloudRelayStatus;
  } | null;
  /** Edge mode: children's own twins synced on their connections (firmware/twin/edge-sync.ts). */
  childTwins?: NonNullable<NonNullable<RuntimeStatus['hub']>['twins']['edge']> | null;
  /** Updates from the cloud (firmware/ota): state, progress, reason, refusals; null when not run from a release. */
  update: UpdateStatus | null;
}

export interface PageCounters {
  port: number;
  sessions: number;
  loginFailures: number;
  /** Logins refused because the address had used up its failures. */
  loginRefused: number;
  /** POSTs refused for a missing or wrong CSRF token. */
  csrfRefused: number;
  /** Failed writes of the chart's day file (a full or read-only disk): the chart then forgets it on restart. */
  historyFileFailures: number;
}

export interface ReportContext {
  ingest: IngestRate;
  errors: RecentErrors;
  ttlSecs: number;
  startedMonoMs: number;
  nowMonoMs: number;
  metricsPort: number | null;
  page?: PageCounters | null;
}

export function buildReport(s: RuntimeStatus, ctx: ReportContext): StatusReport {
  const lanes = s.store.lanes.map((l) => ({
    lane: l.lane,
    records: l.pendingRecords,
    bytes: l.pendingBytes,
    oldestAgeSecs: Math.round(l.oldestPendingAgeMs / 1000),
  }));
  const pendingRecords = lanes.reduce((n, l) => n + l.records, 0);
  const pendingBytes = lanes.reduce((n, l) => n + l.bytes, 0);
  const drainPerSec = s.uplink?.drainRatePerSec ?? 0;
  const ingestPerSec = ctx.ingest.perSec();
  // Bytes per record from what is pending: the store does not count appended bytes, and the pending
  // records are the ones that will fill the quota.
  const recordBytes = pendingRecords > 0 ? pendingBytes / pendingRecords : 0;
  const growthBytesPerSec = (ingestPerSec - drainPerSec) * recordBytes;
  const freeBytes = Math.max(0, s.store.quotaBytes - s.store.bytesOnDisk);
  const lastsSecs = growthBytesPerSec > 0 ? Math.round(freeBytes / growthBytesPerSec) : null;
  const ttlSecs = s.uplink?.settings?.effective.ttlSecs ?? ctx.ttlSecs;
  const limitedBy = lastsSecs === null ? 'none' : ttlSecs > 0 && lastsSecs > ttlSecs ? 'ttl' : 'quota';
  const faulted = s.devices.filter((d) => d.state === 'faulted');
  const uplinkError = s.uplink?.lastError ?? null;
  return {
    gatewayId: s.gatewayId,
    variant: s.variant,
    pid: process.pid,
    uptimeSecs: Math.round((ctx.nowMonoMs - ctx.startedMonoMs) / 1000),
    link: s.link,
    protocol: s.uplink?.protocol ?? 'none',
    lastUplinkError: uplinkError && { message: scrubText(uplinkError.message), atWallMs: uplinkError.atWallMs },
    lanes,
    drain: {
      ratePerSec: round1(drainPerSec),
      etaSecs: s.uplink?.etaSecs === null || s.uplink === null ? null : Math.round(s.uplink.etaSecs),
    },
    ingest: { ratePerSec: round1(ingestPerSec), bytesPerSec: Math.round(ingestPerSec * recordBytes) },
    quota: {
      usedBytes: s.store.bytesOnDisk,
      quotaBytes: s.store.quotaBytes,
      usedPct: round1((100 * s.store.bytesOnDisk) / s.store.quotaBytes),
      lastsSecs,
      ttlSecs,
      limitedBy,
    },
    counters: { expired: s.store.expiredRecords, dropped: s.store.droppedRecords, corrupt: s.store.corruptRecords },
    deadLetters: { total: s.uplink?.deadLetters.total ?? 0, byReason: s.uplink?.deadLetters.byReason ?? {} },
    throttled: { total: s.uplink?.throttled.total ?? 0, byReason: { ...s.uplink?.throttled.byReason } },
    children: s.hub?.connected ?? [],
    hubRefusals: { ...(s.hub?.refusals ?? {}) },
    devices: {
      ok: s.devices.filter((d) => d.state === 'ok').length,
      faulted: faulted.map((d) => ({ id: d.id, error: d.lastError === undefined ? null : scrubText(d.lastError) })),
    },
    errors: ctx.errors.list(),
    metricsPort: ctx.metricsPort,
    page: ctx.page ?? null,
    provisioning: provisioningOf(s),
    edge: edgeCounters(s.uplink?.edge),
    childTwins: childTwinsOf(s.hub?.twins.edge),
    update: s.update ?? null,
  };
}

function provisioningOf(s: RuntimeStatus): StatusReport['provisioning'] {
  const p = s.uplink?.provisioning;
  if (p === undefined) return null;
  const scrub = (text: string | null) => (text === null ? null : scrubText(text));
  const edgeHub = p.edgeHub === undefined ? {} : { edgeHub: { ...p.edgeHub, lastError: scrub(p.edgeHub.lastError) } };
  return { ...p, lastError: scrub(p.lastError), ...edgeHub };
}

function edgeCounters(edge: NonNullable<RuntimeStatus['uplink']>['edge']): StatusReport['edge'] {
  if (edge === undefined) return null;
  const { connections, connecting, backoff, parked, refused, deadLetters } = edge;
  const { resent, waiting: resendWaiting } = deadLetters;
  return {
    connections,
    connecting,
    backoff,
    parked,
    refused: [...refused],
    resent,
    resendWaiting,
    cloud: { ...edge.cloud },
  };
}

type EdgeTwinStatus = NonNullable<NonNullable<RuntimeStatus['hub']>['twins']['edge']>;

function childTwinsOf(twins: EdgeTwinStatus | undefined): EdgeTwinStatus | null {
  if (twins === undefined) return null;
  return { ...twins, lastError: twins.lastError === null ? null : scrubText(twins.lastError) };
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

/** "1h 02m", "45s": durations an operator reads at a glance. */
export function formatDuration(secs: number | null): string {
  if (secs === null) return '—';
  if (secs < 60) return `${Math.round(secs)}s`;
  if (secs < 3600) return `${Math.floor(secs / 60)}m ${String(Math.round(secs % 60)).padStart(2, '0')}s`;
  if (secs < 86_400) return `${Math.floor(secs / 3600)}h ${String(Math.floor((secs % 3600) / 60)).padStart(2, '0')}m`;
  return `${Math.floor(secs / 86_400)}d ${Math.floor((secs % 86_400) / 3600)}h`;
}
