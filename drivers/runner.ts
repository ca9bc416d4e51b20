import type { Clock } from '../firmware/clock.js';
import type { DeviceConfig } from '../firmware/config/types.js';
import type {
  AnyDriverDefinition,
  BusHandles,
  DriverContext,
  DriverInstance,
  DriverLog,
  LinkState,
  ReadingValues,
} from './model.js';
import type { Timers } from './timers.js';

/** First retry after a fault, in ms; doubles per failed attempt up to the maximum. Retries never stop: a
 * sensor unplugged for a week must come back by itself, so the bound is on the delay, not the count. */
export const DEVICE_RETRY_BACKOFF_MS_MIN = 1_000;
export const DEVICE_RETRY_BACKOFF_MS_MAX = 30_000;
/** Readings of one device handed to the sink and not yet settled; an event storm beyond it is dropped
 * (and counted) rather than queued without bound. */
export const DEVICE_SINK_INFLIGHT_MAX = 16;

export type DeviceState = 'starting' | 'ok' | 'faulted' | 'stopped';

export interface DeviceCounters {
  readings: number;
  /** Bus errors, absent device, port vanished: every failed init or sample. */
  busErrors: number;
  /** Lines or frames that were dropped as unusable. */
  malformed: number;
  /** Readings dropped because the sink had DEVICE_SINK_INFLIGHT_MAX pending, or rejected them. */
  dropped: number;
}

export interface DeviceHooks {
  clock: Clock;
  timers: Timers;
  log: DriverLog;
  bus(): Promise<BusHandles[keyof BusHandles]>;
  emit(device: DeviceConfig, values: ReadingValues): Promise<void>;
  report(deviceId: string, patch: Record<string, unknown>): void;
}

/**
 * Runs one device: init, then samples on its poll interval (or waits for its events); on any failure closes
 * the instance, reports the fault, and retries init with exponential backoff until it works again.
 */
export class DeviceRunner {
  state: DeviceState = 'starting';
  readonly counters: DeviceCounters = { readings: 0, busErrors: 0, malformed: 0, dropped: 0 };
  lastReading: { atWallMs: number; values: ReadingValues } | undefined;
  lastError: string | undefined;
  instance: DriverInstance | undefined;
  private generation = 0;
  private backoffMs = DEVICE_RETRY_BACKOFF_MS_MIN;
  private cancelTimer: (() => void) | undefined;
  private inflight = 0;
  private linkState: LinkState | undefined;

  constructor(
    readonly config: DeviceConfig,
    private readonly driver: AnyDriverDefinition,
    private readonly hooks: DeviceHooks,
  ) {}

  start(): void {
    void this.attempt(this.generation);
  }

  async stop(): Promise<void> {
    this.generation++;
    this.state = 'stopped';
    this.cancelTimer?.();
    await this.closeInstance();
  }

  setLinkState(state: LinkState): void {
    this.linkState = state;
    if (this.state === 'ok') this.instance?.onLinkState?.(state);
  }

  private async attempt(generation: number): Promise<void> {
    try {
      const bus = await this.hooks.bus();
      if (generation !== this.generation) return;
      const instance = this.driver.create(this.context(generation), bus);
      this.instance = instance;
      await instance.init();
      if (generation !== this.generation) {
        // Stopped (or faulted) while init ran: whatever init opened after the stop's close must go too,
        // or its timers and ports keep the process alive after shutdown.
        await instance.close().catch(() => undefined);
        return;
      }
      this.markOk();
      if (this.linkState) this.instance.onLinkState?.(this.linkState);
      if (this.instance.sample) await this.poll(generation);
    } catch (error) {
      this.fault(generation, error as Error);
    }
  }

  private async poll(generation: number): Promise<void> {
    const values = await this.instance!.sample!();
    if (generation !== this.generation) return;
    this.backoffMs = DEVICE_RETRY_BACKOFF_MS_MIN;
    if (values) this.deliver(values);
    this.cancelTimer = this.hooks.timers.setTimeout(() => {
      this.poll(generation).catch((error: Error) => this.fault(generation, error));
    }, this.config.pollIntervalMs!);
  }

  private markOk(): void {
    const wasFaulted = this.state === 'faulted';
    this.state = 'ok';
    if (!this.instance?.sample) this.backoffMs = DEVICE_RETRY_BACKOFF_MS_MIN;
    if (wasFaulted) {
      this.hooks.log.info({ deviceId: this.config.id }, 'device recovered');
      this.hooks.report(this.config.id, { state: 'ok', fault: null });
    }
  }

  private fault(generation: number, error: Error): void {
    if (generation !== this.generation) return;
    this.generation++;
    this.counters.busErrors++;
    this.lastError = error.message;
    if (this.state !== 'faulted') {
      this.hooks.log.warn({ deviceId: this.config.id, err: error.message }, 'device faulted');
      this.hooks.report(this.config.id, { state: 'faulted', fault: error.message });
    }
    this.state = 'faulted';
    this.cancelTimer?.();
    const retryGeneration = this.generation;
    const delayMs = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, DEVICE_RETRY_BACKOFF_MS_MAX);
    void this.closeInstance().then(() => {
      if (retryGeneration !== this.generation) return;
      this.cancelTimer = this.hooks.timers.setTimeout(() => void this.attempt(retryGeneration), delayMs);
    });
  }

  private deliver(values: ReadingValues): void {
    if (this.inflight >= DEVICE_SINK_INFLIGHT_MAX) {
      this.counters.dropped++;
      return;
    }
    this.inflight++;
    this.counters.readings++;
    this.lastReading = { atWallMs: this.hooks.clock.wallMs(), values };
    this.hooks
      .emit(this.config, values)
      .catch((error: Error) => {
        this.counters.dropped++;
        this.hooks.log.warn({ deviceId: this.config.id, err: error.message }, 'reading rejected by sink');
      })
      .finally(() => this.inflight--);
  }

  private async closeInstance(): Promise<void> {
    const instance = this.instance;
    this.instance = undefined;
    try {
      await instance?.close();
    } catch (error) {
      this.hooks.log.warn({ deviceId: this.config.id, err: (error as Error).message }, 'close failed');
    }
  }

  private context(generation: number): DriverContext<unknown> {
    const live = (): boolean => generation === this.generation;
    return {
      deviceId: this.config.id,
      settings: this.config.settings,
      clock: this.hooks.clock,
      timers: this.hooks.timers,
      log: this.hooks.log,
      emit: (values) => {
        if (live()) this.deliver(values);
      },
      report: (patch) => {
        if (live()) this.hooks.report(this.config.id, patch);
      },
      malformed: (reason) => {
        if (!live()) return;
        const count = ++this.counters.malformed;
        // A noisy line can produce garbage continuously: log the 1st, 2nd, 4th, 8th... occurrence only.
        if ((count & (count - 1)) === 0)
          this.hooks.log.info({ deviceId: this.config.id, reason, count }, 'dropped malformed input');
      },
      fault: (error) => this.fault(generation, error),
    };
  }
}
