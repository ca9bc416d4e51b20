import type { CancelTimer, Timers } from '../../drivers/timers.js';
import type { ManualClock } from './manual-clock.js';

/** Lets promise chains started by a callback (fake bus calls, sink writes) settle before time moves on. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Timers driven by a ManualClock: nothing fires until advance() moves time past its due point. */
export class ManualTimers implements Timers {
  private nextId = 1;
  private readonly pending = new Map<number, { dueMs: number; callback: () => void }>();

  constructor(private readonly clock: ManualClock) {}

  setTimeout(callback: () => void, ms: number): CancelTimer {
    const id = this.nextId++;
    this.pending.set(id, { dueMs: this.clock.monoMs() + Math.max(0, ms), callback });
    return () => this.pending.delete(id);
  }

  get pendingCount(): number {
    return this.pending.size;
  }

  /** Moves the clock forward by `ms`, firing due callbacks in due order and settling after each. */
  async advance(ms: number): Promise<void> {
    const endMs = this.clock.monoMs() + ms;
    await settle();
    for (;;) {
      const next = this.nextDue(endMs);
      if (!next) break;
      this.clock.advance(next.dueMs - this.clock.monoMs());
      this.pending.delete(next.id);
      next.callback();
      await settle();
    }
    this.clock.advance(endMs - this.clock.monoMs());
    await settle();
  }

  private nextDue(endMs: number): { id: number; dueMs: number; callback: () => void } | undefined {
    let best: { id: number; dueMs: number; callback: () => void } | undefined;
    for (const [id, entry] of this.pending) {
      if (entry.dueMs <= endMs && (!best || entry.dueMs < best.dueMs)) best = { id, ...entry };
    }
    return best;
  }
}
