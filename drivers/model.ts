import type { Clock } from '../firmware/clock.js';
import type { BusKind } from '../firmware/config/types.js';
import type { ConfigNode } from '../firmware/config/node.js';
import type { GpioController } from './gpio-pin.js';
import type { I2cBus } from './i2c-bus.js';
import type { SerialOpener } from './serial-port.js';
import type { Timers } from './timers.js';

/** One sample's values; field names carry their unit (temperatureC, pressurePa). */
export type ReadingValues = Record<string, number | string | boolean | null>;

/** Result of a direct method, in IoT Hub's shape (HTTP-like status, JSON payload). */
export interface MethodResult {
  status: number;
  payload: unknown;
}

/** What the cloud link looks like, for drivers that show it (the status LED). */
export interface LinkState {
  online: boolean;
  /** Records stored but not yet acknowledged upstream. */
  backlogRecords: number;
}

/** pino-compatible subset, so main.ts can pass its logger straight in. */
export interface DriverLog {
  info(fields: object, message: string): void;
  warn(fields: object, message: string): void;
}

export const silentLog: DriverLog = { info() {}, warn() {} };

/** What the runtime gives a driver instance: its identity and settings and a way to hand results back. */
export interface DriverContext<Settings> {
  readonly deviceId: string;
  readonly settings: Settings;
  readonly clock: Clock;
  readonly timers: Timers;
  readonly log: DriverLog;
  /** An event-driven reading (door opened, GPS fix); polled drivers return theirs from sample(). */
  emit(values: ReadingValues): void;
  /** A change of the device's reported properties (relay state). */
  report(patch: Record<string, unknown>): void;
  /** A line or frame that could not be used: counted in status and dropped. */
  malformed(reason: string): void;
  /** The device failed outside a call the runtime made (port vanished): it is restarted with backoff. */
  fault(error: Error): void;
}

/**
 * A running driver. `init` opens what it needs and probes the device, rejecting when the device is absent
 * or not what the board says; the runtime retries it with backoff. `close` releases everything and is
 * called before every retry.
 */
export interface DriverInstance {
  init(): Promise<void>;
  /** Polled drivers: take one sample; undefined means nothing new to report. Rejects on bus errors. */
  sample?(): Promise<ReadingValues | undefined>;
  /** Direct methods by name; the payload is the caller's parsed JSON. */
  methods?: Record<string, (payload: unknown) => Promise<MethodResult>>;
  onLinkState?(state: LinkState): void;
  close(): Promise<void>;
}

export interface BusHandles {
  gpio: GpioController;
  i2c: I2cBus;
  serial: SerialOpener;
}

/** A driver, Zephyr-style: a compatible string, a settings schema and a factory for instances. */
export interface DriverDefinition<Settings, Kind extends BusKind> {
  compatible: string;
  busKind: Kind;
  /** Short sensor name carried as a message property. */
  sensor: string;
  /** Default poll interval in ms for polled drivers; absent for event-driven ones. */
  pollIntervalMsDefault?: number;
  /** Device-node fields this driver reads beyond compatible, bus, status and pollIntervalMs. */
  settingsFields: readonly string[];
  parseSettings(node: ConfigNode): Settings;
  /** What this device holds exclusively on its bus ("address 0x76", "pin 17"); two enabled devices may not
   * claim the same thing on one bus. */
  claims(settings: Settings): string[];
  create(ctx: DriverContext<Settings>, bus: BusHandles[Kind]): DriverInstance;
}

/** The registry stores drivers with their settings type erased; each driver only sees its own. */
export interface AnyDriverDefinition {
  compatible: string;
  busKind: BusKind;
  sensor: string;
  pollIntervalMsDefault?: number;
  settingsFields: readonly string[];
  parseSettings(node: ConfigNode): unknown;
  claims(settings: unknown): string[];
  create(ctx: DriverContext<unknown>, bus: BusHandles[BusKind]): DriverInstance;
}

export function defineDriver<Settings, Kind extends BusKind>(
  definition: DriverDefinition<Settings, Kind>,
): AnyDriverDefinition {
  return definition as unknown as AnyDriverDefinition;
}
