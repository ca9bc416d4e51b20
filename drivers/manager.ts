import type { Clock } from '../firmware/clock.js';
import type { BusConfig, DeviceConfig, LoadedBoard } from '../firmware/config/types.js';
import type { BusProvider } from './buses.js';
import {
  silentLog,
  type BusHandles,
  type DriverLog,
  type LinkState,
  type MethodResult,
  type ReadingValues,
} from './model.js';
import { DRIVERS } from './registry.js';
import { DeviceRunner, type DeviceCounters, type DeviceState } from './runner.js';
import { realTimers, type Timers } from './timers.js';

/** The router's entry point: appends one reading to the durable log and resolves once it is stored. */
export type ReadingSink = (msg: {
  deviceId: string;
  body: Buffer;
  properties: Record<string, string>;
}) => Promise<void>;

export type ReportedListener = (deviceId: string, patch: Record<string, unknown>) => void;

export interface DeviceStatus {
  id: string;
  compatible: string;
  label: string | undefined;
  bus: string;
  state: DeviceState | 'disabled';
  lastReading: { atWallMs: number; values: ReadingValues } | undefined;
  lastError: string | undefined;
  counters: DeviceCounters;
}

export interface StartDevicesOptions {
  /** Real or fake buses, chosen once by the caller (see createBusProvider). */
  buses: BusProvider;
  clock: Clock;
  /** Default: Node's timers. */
  timers?: Timers;
  log?: DriverLog;
}

/** Message properties on every reading: the body is UTF-8 JSON whose field names carry units. */
export const READING_CONTENT_TYPE = 'application/json';

/** The gateway's own sensors and actuators, running. */
export class DeviceManager {
  private readonly runners = new Map<string, DeviceRunner>();
  private readonly disabled: DeviceConfig[] = [];
  private readonly listeners = new Set<ReportedListener>();
  private readonly busHandles = new Map<string, Promise<BusHandles[keyof BusHandles]>>();
  private closed = false;

  constructor(
    private readonly board: LoadedBoard,
    private readonly sink: ReadingSink,
    private readonly opts: StartDevicesOptions,
  ) {}

  /** Starts every enabled device; a device that fails to start is faulted and retried, never fatal. */
  start(): void {
    for (const device of this.board.devices) {
      if (device.status !== 'okay') {
        this.disabled.push(device);
        continue;
      }
      const driver = DRIVERS.get(device.compatible)!;
      const runner = new DeviceRunner(device, driver, {
        clock: this.opts.clock,
        timers: this.opts.timers ?? realTimers,
        log: this.opts.log ?? silentLog,
        bus: () => this.bus(this.board.buses[device.bus]!),
        emit: (config, values) => this.emit(config, driver.sensor, values),
        report: (deviceId, patch) => this.notify(deviceId, patch),
      });
      this.runners.set(device.id, runner);
      runner.start();
    }
  }

  status(): DeviceStatus[] {
    const running = [...this.runners.values()].map((runner) => ({
      id: runner.config.id,
      compatible: runner.config.compatible,
      label: runner.config.label,
      bus: runner.config.bus,
      state: runner.state,
      lastReading: runner.lastReading,
      lastError: runner.lastError,
      counters: { ...runner.counters },
    }));
    const disabled = this.disabled.map((device) => ({
      id: device.id,
      compatible: device.compatible,
      label: device.label,
      bus: device.bus,
      state: 'disabled' as const,
      lastReading: undefined,
      lastError: undefined,
      counters: { readings: 0, busErrors: 0, malformed: 0, dropped: 0 },
    }));
    return [...running, ...disabled];
  }

  /** A direct method on one of the gateway's devices, with IoT Hub-style status codes. */
  async invokeMethod(deviceId: string, name: string, payload: unknown): Promise<MethodResult> {
    const runner = this.runners.get(deviceId);
    if (!runner) return { status: 404, payload: { error: `no running device "${deviceId}"` } };
    const method = runner.instance?.methods?.[name];
    if (runner.state !== 'ok' || !runner.instance) {
      return {
        status: 503,
        payload: { error: `device "${deviceId}" is ${runner.state}: ${runner.lastError ?? ''}`.trim() },
      };
    }
    if (!method) return { status: 404, payload: { error: `device "${deviceId}" has no method "${name}"` } };
    try {
      return await method(payload);
    } catch (error) {
      return { status: 500, payload: { error: (error as Error).message } };
    }
  }

  /** Reported-property changes (faulted/ok, relay state). Returns a function that unsubscribes. */
  onReported(listener: ReportedListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Tells link-aware devices (the status LED) whether the uplink is up and how much is waiting. */
  setLinkState(state: LinkState): void {
    for (const runner of this.runners.values()) runner.setLinkState(state);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.runners.values()].map((runner) => runner.stop()));
    await this.opts.buses.close();
  }

  private bus(config: BusConfig): Promise<BusHandles[keyof BusHandles]> {
    let handle = this.busHandles.get(config.id);
    if (!handle) {
      handle = this.openBus(config);
      this.busHandles.set(config.id, handle);
      // A bus that failed to open is opened afresh by the next retry, not remembered as broken.
      handle.catch(() => this.busHandles.delete(config.id));
    }
    return handle;
  }

  private async openBus(config: BusConfig): Promise<BusHandles[keyof BusHandles]> {
    if (config.kind === 'gpio') return this.opts.buses.gpio(config);
    if (config.kind === 'i2c') return this.opts.buses.i2c(config);
    return this.opts.buses.serial(config);
  }

  private async emit(device: DeviceConfig, sensor: string, values: ReadingValues): Promise<void> {
    await this.sink({
      deviceId: device.id,
      body: Buffer.from(JSON.stringify(values), 'utf8'),
      properties: {
        'content-type': READING_CONTENT_TYPE,
        'content-encoding': 'utf-8',
        sensor,
        compatible: device.compatible,
      },
    });
  }

  private notify(deviceId: string, patch: Record<string, unknown>): void {
    for (const listener of this.listeners) {
      try {
        listener(deviceId, patch);
      } catch (error) {
        this.opts.log?.warn({ deviceId, err: (error as Error).message }, 'reported-property listener threw');
      }
    }
  }
}

/** Starts the board's devices, feeding readings to `sink`. */
export async function startDevices(
  board: LoadedBoard,
  sink: ReadingSink,
  opts: StartDevicesOptions,
): Promise<DeviceManager> {
  const manager = new DeviceManager(board, sink, opts);
  manager.start();
  return manager;
}
