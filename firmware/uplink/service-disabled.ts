import type { RingLog } from '../store/log.js';
import { UPSTREAM_LANE } from '../store/names.js';
import type { UplinkService } from './service-types.js';

/** Sums the store's view of the pump's lanes: bytes pending and the oldest record's age. */
export function backlogOf(log: RingLog, lanes: string[]): { records: number; bytes: number; oldestAgeMs: number } {
  let records = 0;
  let bytes = 0;
  let oldestAgeMs = 0;
  for (const lane of log.stats().lanes) {
    if (!lanes.includes(lane.lane)) continue;
    records += lane.pendingRecords;
    bytes += lane.pendingBytes;
    oldestAgeMs = Math.max(oldestAgeMs, lane.oldestPendingAgeMs);
  }
  return { records, bytes, oldestAgeMs };
}

/** board.json's `"protocol": "none"`: no pump, the upstream lane's backlog still shown. */
export function disabledService(log: RingLog): UplinkService {
  return {
    protocol: 'none',
    status: () => ({
      link: 'disabled',
      protocol: 'none',
      lastError: null,
      lastWake: null,
      lastProbe: null,
      connectedSinceWallMs: null,
      connects: 0,
      backoffCeilingMs: 0,
      retryInMs: null,
      inflight: 0,
      windowMax: null,
      deadLetters: { total: 0, byReason: {}, last: null },
      throttled: { total: 0, byReason: {}, last: null },
      bytesPerSecMax: 0,
      backlog: backlogOf(log, [UPSTREAM_LANE]),
      drainRatePerSec: 0,
      etaSecs: null,
      interfaces: {},
      settings: null,
    }),
    wake: () => {},
    addResyncHook: () => {},
    bandwidth: { take: () => 0 },
    stop: async () => {},
  };
}
