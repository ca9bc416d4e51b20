import type { Cursor } from './cursor.js';

/**
 * The window after a connection died with messages in flight, messages; it doubles with every round of
 * acknowledgements (TCP's slow start). A broker that closes the connection on one bad message often resets
 * it with PUBACKs still unread, so a full window would be lost and charged again and again; starting small
 * sends the suspect first and alone, and the window is back to full within a few round trips.
 */
export const WINDOW_AFTER_LOSS_MESSAGES = 1;

/**
 * The window every other connection starts with, messages; it grows by one per PUBACK as after a loss,
 * so it doubles each round trip and reaches inflightMax (100) in four. A fleet reconnecting after an
 * outage or a broker restart would otherwise put 100 publishes per gateway on the wire in its first round
 * trip, 20,000 at once for 200 gateways, on a broker that is busiest just then; one gateway on its own
 * loses a few round trips, a fraction of a second on a backlog that takes seconds to drain.
 */
export const WINDOW_AFTER_RECONNECT_MESSAGES = 10;

/**
 * What the next connection must recover through after a loss that charged a message in flight.
 *
 * A broker that closes the connection on one bad message (mosquitto over max_packet_size on MQTT 3.1.1) often
 * resets it with PUBACKs already sent but unread, so the charge lands on the oldest message without a PUBACK,
 * which may be an innocent one before the culprit. The first recovery is TCP's slow start (window 1, one more
 * per PUBACK): a link that merely dropped is back to full speed within a few round trips. A second loss before
 * the first recovery passed `throughSeq` points at a culprit in that range, so the recovery turns strict: one
 * message at a time up to `throughSeq`, and the next charge lands on the culprit itself. That bounds the
 * innocent charges of one bad message at two, so its connections at attempts + 3.
 */
export interface LossRecovery {
  readonly lane: string;
  /** The highest seq of that lane that was in flight at the loss. */
  readonly throughSeq: number;
  readonly strict: boolean;
}

/** Recovery is over once the lane's contiguous frontier has reached the seq in flight at the loss. */
export function recovered(recovery: LossRecovery, cursors: readonly Cursor[]): boolean {
  const cursor = cursors.find((c) => c.lane.name === recovery.lane);
  return cursor === undefined || cursor.frontier() >= recovery.throughSeq;
}

/** The recovery the next connection inherits from one that ended: `charged` is the lane a loss charged. */
export function nextRecovery(
  current: LossRecovery | null,
  cursors: readonly Cursor[],
  charged: Cursor | null,
): LossRecovery | null {
  const unfinished = current !== null && !recovered(current, cursors);
  if (charged === null) return unfinished ? current : null;
  const highestSent = charged.inflight.at(-1)?.record.seq ?? charged.frontier();
  const inherited = unfinished && current.lane === charged.lane.name ? current.throughSeq : 0;
  return { lane: charged.lane.name, throughSeq: Math.max(highestSent, inherited), strict: unfinished };
}
