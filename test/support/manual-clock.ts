import type { Clock } from '../../firmware/clock.js';

/** A clock for tests: both time bases move only when told to. */
export class ManualClock implements Clock {
  private wall: number;
  private mono: number;
  private synced: boolean;

  constructor(opts: { wallMs?: number; monoMs?: number; synced?: boolean } = {}) {
    this.wall = opts.wallMs ?? Date.UTC(2026, 0, 1);
    this.mono = opts.monoMs ?? 1_000_000;
    this.synced = opts.synced ?? true;
  }

  wallMs(): number {
    return this.wall;
  }

  monoMs(): number {
    return this.mono;
  }

  wallSynced(): boolean {
    return this.synced;
  }

  /** Time passes: both clocks advance together. */
  advance(ms: number): void {
    this.wall += ms;
    this.mono += ms;
  }

  /** The wall clock is stepped (NTP sync, operator); monotonic time does not move. */
  stepWall(ms: number): void {
    this.wall += ms;
  }

  setSynced(synced: boolean): void {
    this.synced = synced;
  }

  /** A reboot: monotonic time restarts near zero, the wall clock is whatever the board boots with. */
  reboot(opts: { wallMs: number; synced: boolean }): void {
    this.mono = 1_000;
    this.wall = opts.wallMs;
    this.synced = opts.synced;
  }
}
