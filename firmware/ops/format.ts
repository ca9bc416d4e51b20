import { formatDuration, type StatusReport } from './report.js';

/** The readable `outpost status` output: one block, the lines an operator on a support call reads out. */
export function formatReport(r: StatusReport): string {
  const lines = [
    `outpost ${r.gatewayId} [${r.variant}] pid ${r.pid}, up ${formatDuration(r.uptimeSecs)}`,
    `link:      ${r.link} (${r.protocol})${r.lastUplinkError ? `, last error: ${r.lastUplinkError.message}` : ''}`,
    'backlog:',
    ...r.lanes.map(
      (l) =>
        `  ${l.lane.padEnd(20)} ${String(l.records).padStart(9)} rec ${String(l.bytes).padStart(12)} B  oldest ${formatDuration(l.oldestAgeSecs)}`,
    ),
    `drain:     ${r.drain.ratePerSec} rec/s, ETA ${formatDuration(r.drain.etaSecs)}`,
    `ingest:    ${r.ingest.ratePerSec} rec/s (${r.ingest.bytesPerSec} B/s)`,
    `quota:     ${r.quota.usedBytes} of ${r.quota.quotaBytes} B (${r.quota.usedPct}%), ${quotaOutlook(r)}`,
    `counters:  expired ${r.counters.expired}, dropped ${r.counters.dropped}, corrupt ${r.counters.corrupt}`,
    `dead:      ${r.deadLetters.total}${deadLetterReasons(r)} (outpost log dump --lane deadletter)`,
    `throttled: ${r.throttled.total === 0 ? 'never' : `${r.throttled.total}: ${refusalsText(r.throttled.byReason)}`}`,
    `children:  ${r.children.length}${r.children.length > 0 ? ` (${r.children.join(', ')})` : ''}`,
    `refusals:  ${refusalsText(r.hubRefusals)}`,
    `devices:   ${r.devices.ok} ok, ${r.devices.faulted.length} faulted${r.devices.faulted.map((d) => `\n  ${d.id}: ${d.error ?? 'faulted'}`).join('')}`,
    `errors:    ${r.errors.length === 0 ? 'none' : ''}`,
    ...r.errors.slice(-5).map((e) => `  ${new Date(e.atWallMs).toISOString()} ${e.source}: ${e.message}`),
  ];
  if (r.provisioning) lines.push(`dps:       ${provisioningText(r.provisioning)}`);
  if (r.edge) {
    const { connections, connecting, backoff, parked, refused, resent, resendWaiting } = r.edge;
    const refusedText = refused.length === 0 ? '' : ` (${refused.join(', ')})`;
    lines.push(
      `edge:      ${connections} up, ${connecting} connecting, ${backoff} in backoff, ${parked} parked, ` +
        `${refused.length} refused${refusedText}, ${resent} re-sent from deadletter (${resendWaiting} waiting)`,
    );
    if (r.edge.cloud) lines.push(`cloud:     ${cloudRelayText(r.edge.cloud)}`);
  }
  if (r.childTwins) {
    const { syncs, pushes, pulls, queued, failures, refused, lastError } = r.childTwins;
    lines.push(
      `twins:     ${syncs} child syncs (${pushes} pushed, ${pulls} read), ${queued} queued, ` +
        `${failures} failed, ${refused} refused${lastError === null ? '' : `; last: ${lastError}`}`,
    );
  }
  if (r.metricsPort !== null) lines.push(`metrics:   http://127.0.0.1:${r.metricsPort}/metrics`);
  if (r.page) {
    const { loginFailures, loginRefused, csrfRefused } = r.page;
    const refused = `${loginFailures} failed logins, ${loginRefused} refused, ${csrfRefused} bad CSRF`;
    lines.push(`page:      port ${r.page.port}, ${r.page.sessions} sessions, ${refused}`);
  }
  if (r.update) lines.push(`update:    ${updateText(r.update)}`);
  return lines.join('\n');
}

/** "provisioned: hub.azure-devices.net as pump-7 (from the cache)" or why not, and when DPS is asked again. */
function provisioningText(p: NonNullable<StatusReport['provisioning']>): string {
  const identity =
    p.assignedHub === null
      ? ''
      : `${p.assignedHub} as ${p.deviceId} (${p.source === 'cache' ? 'from the cache' : 'assigned by DPS'})`;
  const head = p.state === 'refused' ? `refused (${p.refusal})` : p.state;
  const next =
    p.nextAttemptInMs === null ? '' : `, next registration in ${formatDuration(Math.ceil(p.nextAttemptInMs / 1000))}`;
  const why = p.reason === null ? '' : `, registering because ${p.reason}`;
  const error = p.lastError === null || (p.state === 'provisioned' && p.reason === null) ? '' : `; ${p.lastError}`;
  const edgeHub = p.edgeHub === undefined ? '' : `; ${edgeHubText(p.edgeHub)}`;
  const enrollment = `${p.registrationId} in ${p.idScope}`;
  return `${head}${identity === '' ? '' : `: ${identity}`}, ${enrollment}${why}${next}${error}${edgeHub}`;
}

/** "$edgeHub ready on hub (set up by the gateway, confirmed)" or why not, and when it is tried again. */
function edgeHubText(e: NonNullable<NonNullable<StatusReport['provisioning']>['edgeHub']>): string {
  const where = e.hub === null ? '' : ` on ${e.hub}`;
  const from = e.source === null ? '' : ` (${e.source === 'cache' ? 'key from the cache' : 'set up by the gateway'}`;
  const confirmed = e.source === null ? '' : `${e.verified ? ', confirmed' : ''})`;
  const next =
    e.nextAttemptInMs === null ? '' : `, next attempt in ${formatDuration(Math.ceil(e.nextAttemptInMs / 1000))}`;
  return `$edgeHub ${e.state}${where}${from}${confirmed}${next}${e.lastError === null ? '' : `: ${e.lastError}`}`;
}

/** "downloading 1.1.0 42% (12582912 of 30000000 B)", "refused 1.1.0 (sha256): ...", with refusals since start. */
function updateText(u: NonNullable<StatusReport['update']>): string {
  const version = u.version === null ? '' : ` ${u.version}`;
  const p = u.progress;
  const progress = p ? ` ${p.percent}% (${p.receivedBytes} of ${p.totalBytes} B)` : '';
  const reason = u.reason === null ? '' : ` (${u.reason}): ${u.message ?? ''}`;
  const refusals = refusalsText(u.refusals);
  return (
    `${u.state}${version}${progress}${reason}, running ${u.running}` +
    `${refusals === 'none' ? '' : `; refused since start: ${refusals}`}`
  );
}

function deadLetterReasons(r: StatusReport): string {
  const reasons = Object.entries(r.deadLetters.byReason).map(([reason, count]) => `${reason} ${count}`);
  return reasons.length === 0 ? '' : `: ${reasons.join(', ')}`;
}

/** "signature 3, connect-timeout 120": the busiest reason first. */
function refusalsText(refusals: Record<string, number>): string {
  const entries = Object.entries(refusals).sort((a, b) => b[1] - a[1]);
  return entries.length === 0 ? 'none' : entries.map(([reason, n]) => `${reason} ${n}`).join(', ');
}

function quotaOutlook(r: StatusReport): string {
  const ttl = r.quota.ttlSecs > 0 ? formatDuration(r.quota.ttlSecs) : 'none';
  switch (r.quota.limitedBy) {
    case 'none':
      return `not growing (TTL ${ttl})`;
    case 'ttl':
      return `lasts ${formatDuration(r.quota.lastsSecs)} at this rate, longer than the TTL (${ttl}): records expire first`;
    case 'quota':
      return `full in ${formatDuration(r.quota.lastsSecs)} at this rate, before the TTL (${ttl}): oldest data will be dropped`;
  }
}

/** Width of the progress bar in `--watch`, characters. */
const PROGRESS_BAR_CHARS = 24;

/** One line for `outpost status --watch` while a backlog drains; `startRecords` is the backlog when watching began. */
export function formatProgress(r: StatusReport, startRecords: number): string {
  const left = r.lanes.reduce((n, l) => n + l.records, 0);
  const done = startRecords > 0 ? Math.min(1, Math.max(0, (startRecords - left) / startRecords)) : 1;
  const filled = Math.round(done * PROGRESS_BAR_CHARS);
  return (
    `[${'#'.repeat(filled)}${'.'.repeat(PROGRESS_BAR_CHARS - filled)}] ${(done * 100).toFixed(0).padStart(3)}% ` +
    `${left} rec left, ${r.drain.ratePerSec} rec/s, ETA ${formatDuration(r.drain.etaSecs)}, link ${r.link}`
  );
}

/** Edge mode's cloud → child relay: "C2D 1 held, 5 delivered, 0 deferred; methods 0 pending, ..." */
function cloudRelayText(c: NonNullable<NonNullable<StatusReport['edge']>['cloud']>): string {
  return (
    `C2D ${c.c2dPending} held, ${c.c2dDelivered} delivered, ${c.c2dDeferred} deferred, ${c.c2dRefused} refused; ` +
    'methods ' +
    `${c.methodsPending} pending, ${c.methodsAnswered} answered, ${c.methodsRefused} refused, ` +
    `${c.methodsTimedOut} unanswered`
  );
}
