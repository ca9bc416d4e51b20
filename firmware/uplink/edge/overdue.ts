import { UplinkError } from '../types.js';
import type { LaneCursor } from './lane-cursor.js';

/** The edge drain's publishes awaiting their PUBACK, found in the lanes' read-aheads (session.ts). */

/** When the oldest publish on the gateway's own connection was sent; null when none is in flight. */
export function oldestGatewaySentAtMs(cursors: LaneCursor[], gatewayId: string): number | null {
  let oldest: number | null = null;
  for (const cursor of cursors)
    for (const entry of cursor.entries) {
      const gateway = entry.identity === gatewayId && entry.state === 'sent';
      if (gateway && (oldest === null || entry.sentAtMs < oldest)) oldest = entry.sentAtMs;
    }
  return oldest;
}

/** The children with a publish unanswered for `timeoutMs` or longer (the gateway's own is the pump's). */
export function overdueIdentities(
  cursors: LaneCursor[],
  gatewayId: string,
  nowMs: number,
  timeoutMs: number,
): Set<string> {
  const overdue = new Set<string>();
  for (const cursor of cursors)
    for (const entry of cursor.entries) {
      if (entry.state !== 'sent' || entry.identity === gatewayId) continue;
      if (nowMs - entry.sentAtMs >= timeoutMs) overdue.add(entry.identity);
    }
  return overdue;
}

/** What the identity's connection is failed with: it is replaced, and the publish goes again on the new one. */
export function overdueError(identity: string, timeoutMs: number): UplinkError {
  return new UplinkError('TIMEOUT', `no PUBACK for ${timeoutMs} ms on the connection of "${identity}"`);
}
