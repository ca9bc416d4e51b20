import { createServer, type Server } from 'node:http';
import type { StatusReport } from './report.js';

/** Loopback only: metrics name devices and children, and a gateway's LAN is not trusted. */
export const METRICS_HOST = '127.0.0.1';

type Sample = [labels: Record<string, string>, value: number];

/** Prometheus text exposition format 0.0.4 of one status report. */
export function renderMetrics(r: StatusReport, rssBytes: number): string {
  const out: string[] = [];
  const metric: MetricWriter = (name, type, help, samples) => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples)
      out.push(`${name}${labelText(labels)} ${Number.isFinite(value) ? value : 'NaN'}`);
  };
  uplinkMetrics(r, metric);
  storeMetrics(r, metric);
  cloudRefusalMetrics(r, metric);
  localMetrics(r, rssBytes, metric);
  if (r.edge) edgeMetrics(r.edge, metric);
  if (r.childTwins) childTwinMetrics(r.childTwins, metric);
  if (r.page) pageMetrics(r.page, metric);
  if (r.update) updateMetrics(r.update, metric);
  return `${out.join('\n')}\n`;
}

type MetricWriter = (name: string, type: 'gauge' | 'counter', help: string, samples: Sample[]) => void;

/** The link, and the backlog per lane and how fast it drains and grows. */
function uplinkMetrics(r: StatusReport, metric: MetricWriter): void {
  const lanes = (pick: (l: StatusReport['lanes'][number]) => number): Sample[] =>
    r.lanes.map((l) => [{ lane: l.lane }, pick(l)]);
  metric('outpost_link_up', 'gauge', 'Whether the uplink is connected (1) or not (0).', [
    [{ protocol: r.protocol, state: r.link }, r.link === 'up' ? 1 : 0],
  ]);
  metric(
    'outpost_backlog_records',
    'gauge',
    'Records stored and not yet acknowledged, per lane.',
    lanes((l) => l.records),
  );
  metric(
    'outpost_backlog_bytes',
    'gauge',
    'Bytes stored and not yet acknowledged, per lane.',
    lanes((l) => l.bytes),
  );
  metric(
    'outpost_backlog_oldest_age_seconds',
    'gauge',
    'Age of the oldest unacknowledged record, per lane.',
    lanes((l) => l.oldestAgeSecs),
  );
  metric('outpost_drain_rate_records_per_second', 'gauge', 'Records acknowledged by the cloud per second.', [
    [{}, r.drain.ratePerSec],
  ]);
  metric('outpost_ingest_rate_records_per_second', 'gauge', 'Records appended to the log per second.', [
    [{}, r.ingest.ratePerSec],
  ]);
}

/** The ring log: its disk use against the quota, its TTL, and what it removed. */
function storeMetrics(r: StatusReport, metric: MetricWriter): void {
  metric('outpost_store_bytes', 'gauge', 'Bytes the ring log holds on disk.', [[{}, r.quota.usedBytes]]);
  metric('outpost_store_quota_bytes', 'gauge', 'Disk quota of the ring log.', [[{}, r.quota.quotaBytes]]);
  metric(
    'outpost_store_quota_lasts_seconds',
    'gauge',
    'Time until the quota is full at the current growth (NaN: not growing).',
    [[{}, r.quota.lastsSecs ?? NaN]],
  );
  metric('outpost_store_ttl_seconds', 'gauge', 'Time to live of stored records.', [[{}, r.quota.ttlSecs]]);
  metric('outpost_records_expired_total', 'counter', 'Records removed because their TTL ran out.', [
    [{}, r.counters.expired],
  ]);
  metric('outpost_records_dropped_total', 'counter', 'Records dropped to stay within the quota.', [
    [{}, r.counters.dropped],
  ]);
  metric('outpost_records_corrupt_total', 'counter', 'Records skipped because their CRC failed.', [
    [{}, r.counters.corrupt],
  ]);
}

/** What the cloud would not take (dead letters) and the connections it ended with a throttling answer. */
function cloudRefusalMetrics(r: StatusReport, metric: MetricWriter): void {
  const deadLetters: Sample[] = Object.entries(r.deadLetters.byReason).map(([reason, count]) => [{ reason }, count]);
  const deadHelp = 'Messages the cloud would not take, moved to the deadletter lane, by reason.';
  metric('outpost_dead_letters_total', 'counter', deadHelp, deadLetters);
  const throttled = Object.entries(r.throttled.byReason).map(([reason, n]): Sample => [{ reason }, n]);
  const throttledHelp = 'Uplink connections the cloud ended with a throttling answer (busy, quota, rate), by reason.';
  metric('outpost_uplink_throttled_total', 'counter', throttledHelp, throttled);
}

/** The local side: the hub's children and refusals, the attached devices, errors, uptime and memory. */
function localMetrics(r: StatusReport, rssBytes: number, metric: MetricWriter): void {
  metric('outpost_hub_children_connected', 'gauge', 'Child devices connected to the local hub.', [
    [{}, r.children.length],
  ]);
  const refusals = Object.entries(r.hubRefusals).map(([reason, n]): Sample => [{ reason }, n]);
  const refusalsHelp = 'Connections, packets and publishes the local hub refused, by reason.';
  metric('outpost_hub_refusals_total', 'counter', refusalsHelp, refusals);
  metric('outpost_devices_ok', 'gauge', 'Attached devices sampling normally.', [[{}, r.devices.ok]]);
  metric(
    'outpost_device_faulted',
    'gauge',
    'Attached devices in the faulted state.',
    r.devices.faulted.map((d) => [{ device: d.id }, 1]),
  );
  metric('outpost_errors_recent', 'gauge', 'Errors in the recent-errors ring.', [[{}, r.errors.length]]);
  metric('outpost_uptime_seconds', 'gauge', 'Seconds since the gateway started.', [[{}, r.uptimeSecs]]);
  metric('outpost_process_resident_memory_bytes', 'gauge', 'Resident set size of the gateway process.', [
    [{}, rssBytes],
  ]);
}

/** Edge mode's upstream connections, parked and refused identities, resent dead letters. */
function edgeMetrics(edge: NonNullable<StatusReport['edge']>, metric: MetricWriter): void {
  const edgeGauge = (name: string, help: string, value: number) =>
    metric(`outpost_edge_${name}`, 'gauge', help, [[{}, value]]);
  edgeGauge('connections', 'Edge mode: upstream connections of children and modules.', edge.connections);
  edgeGauge('parked_identities', 'Edge mode: identities whose records wait in the holding lane.', edge.parked);
  edgeGauge(
    'refused_identities',
    'Edge mode: identities IoT Hub refuses (their records go to deadletter).',
    edge.refused.length,
  );
  const resentHelp = 'Edge mode: dead letters sent again once their identity came back.';
  metric('outpost_edge_dead_letters_resent_total', 'counter', resentHelp, [[{}, edge.resent]]);
  const waitingHelp = 'Edge mode: identities with dead letters waiting for IoT Hub to take them back.';
  edgeGauge('resend_waiting_identities', waitingHelp, edge.resendWaiting);
  if (edge.cloud) edgeCloudMetrics(edge.cloud, metric);
}

/** Edge mode: the children's own twins on their upstream connections. */
function childTwinMetrics(twins: NonNullable<StatusReport['childTwins']>, metric: MetricWriter): void {
  const twinCount = (name: string, help: string, value: number) =>
    metric(`outpost_child_twin_${name}_total`, 'counter', help, [[{}, value]]);
  twinCount('syncs', "Edge mode: syncs of a child's own twin on its upstream connection.", twins.syncs);
  twinCount('failures', "Edge mode: twin operations on a child's connection failed or timed out.", twins.failures);
  twinCount('refused', "Edge mode: children's reported patches IoT Hub refused.", twins.refused);
  const queuedHelp = 'Edge mode: children whose twin sync waits for a slot.';
  metric('outpost_child_twin_queued', 'gauge', queuedHelp, [[{}, twins.queued]]);
}

/** The technician page's refused logins and POSTs, and its chart's failed writes. */
function pageMetrics(page: NonNullable<StatusReport['page']>, metric: MetricWriter): void {
  const count = (name: string, help: string, value: number) =>
    metric(`outpost_page_${name}_total`, 'counter', help, [[{}, value]]);
  count('login_failures', 'Failed logins on the technician page.', page.loginFailures);
  count('login_refused', 'Technician page logins refused: too many failures from the address.', page.loginRefused);
  count('csrf_refused', 'POSTs to the technician page refused for a missing or wrong CSRF token.', page.csrfRefused);
  count('history_write_failures', "Failed writes of the technician page chart's day file.", page.historyFileFailures);
}

/** The update's state as a 1 labelled with it (and the version), its progress, and refusals by reason. */
function updateMetrics(u: NonNullable<StatusReport['update']>, metric: MetricWriter): void {
  const state: Sample = [{ state: u.state, version: u.version ?? '', running: u.running }, 1];
  metric('outpost_update_state', 'gauge', 'The OTA update state (1 for the state in force).', [state]);
  const received = u.progress?.receivedBytes ?? 0;
  metric('outpost_update_downloaded_bytes', 'gauge', 'Bytes of the update artifact on disk.', [[{}, received]]);
  const total = u.progress?.totalBytes ?? 0;
  metric('outpost_update_artifact_bytes', 'gauge', 'Size of the update artifact being downloaded.', [[{}, total]]);
  const refusals = Object.entries(u.refusals).map(([reason, n]): Sample => [{ reason }, n]);
  metric('outpost_update_refusals_total', 'counter', 'Update manifests refused since start, by reason.', refusals);
}

/** Edge mode's cloud → child relay: what is held and pending now, and what it did since the start. */
function edgeCloudMetrics(c: NonNullable<NonNullable<StatusReport['edge']>['cloud']>, metric: MetricWriter): void {
  const gauge = (name: string, help: string, value: number) =>
    metric(`outpost_edge_${name}`, 'gauge', help, [[{}, value]]);
  const count = (name: string, help: string, value: number) =>
    metric(`outpost_edge_${name}_total`, 'counter', help, [[{}, value]]);
  gauge('c2d_pending', "Edge mode: C2D messages held for a child's PUBACK (C2D_PENDING_MAX).", c.c2dPending);
  count('c2d_delivered', 'Edge mode: C2D messages a child acknowledged, completed at IoT Hub.', c.c2dDelivered);
  count('c2d_deferred', 'Edge mode: C2D messages over the held limits, left for IoT Hub to send again.', c.c2dDeferred);
  count('c2d_refused', "Edge mode: C2D messages not on the identity's own topic, never passed on.", c.c2dRefused);
  gauge('methods_pending', "Edge mode: IoT Hub method calls awaiting a child's answer.", c.methodsPending);
  count(
    'methods_answered',
    'Edge mode: IoT Hub method calls answered by the child (or 404 for one gone).',
    c.methodsAnswered,
  );
  count(
    'methods_refused',
    'Edge mode: IoT Hub method calls refused: 429 over CLOUD_METHOD_CALLS_PENDING_MAX, 400.',
    c.methodsRefused,
  );
  count('methods_unanswered', 'Edge mode: IoT Hub method calls the child never answered.', c.methodsTimedOut);
}

function labelText(labels: Record<string, string>): string {
  const entries = Object.entries(labels);
  if (entries.length === 0) return '';
  const escape = (v: string) => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${entries.map(([k, v]) => `${k}="${escape(v)}"`).join(',')}}`;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics on METRICS_HOST:port (0 = any free port, for tests); everything else is 404. */
export async function serveMetrics(port: number, report: () => StatusReport): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: GET /metrics\n');
      return;
    }
    res
      .writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' })
      .end(renderMetrics(report(), process.memoryUsage.rss()));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`metrics.port ${port}: ${err.message}`, { cause: err })));
    server.listen(port, METRICS_HOST, resolve);
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
