import type { RuntimeStatus } from '../runtime.js';
import { UPSTREAM_LANE } from '../store/names.js';

/** The periodic status line (journal, `npm start`'s terminal): link, backlog, disk, counters, readings. */
export function formatStatus(s: RuntimeStatus): string {
  const up = s.store.lanes.find((l) => l.lane === UPSTREAM_LANE);
  const usedPct = ((100 * s.store.bytesOnDisk) / s.store.quotaBytes).toFixed(1);
  const readings = s.devices
    .filter((d) => d.state !== 'disabled')
    .map((d) => `${d.id}:${d.state === 'ok' ? summarize(d.lastReading?.values) : d.state}`)
    .join(' ');
  return (
    `outpost ${s.gatewayId} [${s.variant}] link=${s.link} ` +
    `backlog=${up?.pendingRecords ?? 0} rec/${up?.pendingBytes ?? 0} B ` +
    `oldest=${((up?.oldestPendingAgeMs ?? 0) / 1000).toFixed(1)}s ` +
    `disk=${s.store.bytesOnDisk} B (${usedPct}% of quota) ` +
    `expired=${s.store.expiredRecords} dropped=${s.store.droppedRecords} corrupt=${s.store.corruptRecords}` +
    `${simCloudPart(s)} | ${readings}`
  );
}

/** The sim board's embedded cloud: the simulated link and what arrived, so the drain is visible. */
function simCloudPart(s: RuntimeStatus): string {
  const cloud = s.uplink?.simCloud;
  if (cloud === undefined) return '';
  const change = cloud.link.state === 'up' ? 'drops' : 'returns';
  const next = cloud.link.nextChangeInSecs === null ? '' : `, ${change} in ${cloud.link.nextChangeInSecs}s`;
  const order = cloud.outOfOrder === 0 ? 'in order' : `${cloud.outOfOrder} OUT OF ORDER`;
  return (
    ` | sim link ${cloud.link.state}${next}; cloud received=${cloud.received} ` + `(${order}, ${cloud.repeats} repeats)`
  );
}

function summarize(values: Record<string, unknown> | undefined): string {
  if (!values) return 'waiting';
  const first = Object.entries(values).find(([, v]) => typeof v === 'number' || typeof v === 'boolean');
  if (!first) return 'ok';
  const [key, v] = first;
  return `${key}=${typeof v === 'number' ? Number(v.toFixed(2)) : v}`;
}
