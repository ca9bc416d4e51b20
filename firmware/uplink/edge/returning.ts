import type { DrainLimits } from '../drain.js';
import type { HeldLane } from './held.js';
import type { IdentityState } from './pool.js';
import type { DeadLetterResend } from './resend.js';

/** What the session lends the re-sends of dead letters. */
export interface ReturningHost {
  gatewayId: string;
  limits: Pick<DrainLimits, 'readBatchRecordsMax' | 'readBatchBytesMax'>;
  state(identity: string): IdentityState;
  want(identity: string): void;
  /** The identity's publishes awaiting their PUBACK. */
  sentOf(identity: string): number;
  /** The identity's letters are in the holding lane: its records queued meanwhile are parked behind them. */
  resent(identity: string): void;
  failed(identity: string, err: unknown): void;
}

/**
 * The edge drain's side of DeadLetterResend (resend.ts): identities with dead letters waiting are connected
 * when due for a recheck, and once up with nothing in flight their letters go to the holding lane. While
 * that copy runs the identity is `resending`: the session sends nothing of it and parks nothing of it, so
 * its newer records can only follow its letters.
 */
export class ReturningLetters {
  private readonly running = new Set<string>();

  constructor(
    private readonly resend: DeadLetterResend | null,
    private readonly held: HeldLane,
    private readonly host: ReturningHost,
  ) {}

  resending(identity: string): boolean {
    return this.running.has(identity);
  }

  /** Looks at the identities with letters waiting (on every dispatch). */
  check(): void {
    const resend = this.resend;
    if (resend === null || resend.waitingCount === 0) return;
    for (const identity of resend.identities()) {
      if (this.running.has(identity)) continue;
      // The gateway's own are sent at once, on its connection (the session's): letters of its drivers from
      // before they went up as the gateway, dead-lettered under the driver's id, which IoT Hub never took.
      const state = identity === this.host.gatewayId ? 'up' : this.host.state(identity);
      if (state === 'closed') this.host.want(identity);
      else if (state === 'up' && this.host.sentOf(identity) === 0) this.start(resend, identity);
    }
  }

  private start(resend: DeadLetterResend, identity: string): void {
    this.running.add(identity);
    resend.resend(identity, this.held, this.host.limits).then(
      () => {
        this.running.delete(identity);
        this.host.resent(identity);
      },
      (err: unknown) => this.host.failed(identity, err),
    );
  }
}
