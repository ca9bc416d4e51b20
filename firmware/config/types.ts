import type { MetricsConfig } from './metrics.js';
import type { OtaConfig } from './ota.js';
import type { PageConfig } from './page.js';
import type { StorageConfig } from './storage.js';

export type BusKind = 'gpio' | 'i2c' | 'serial';

/** A simulated input on the sim board's GPIO controller. */
export type SimInputConfig = { kind: 'toggle'; periodMs: number } | { kind: 'pulses'; pulsesPerSec: number };

export interface GpioBusConfig {
  id: string;
  kind: 'gpio';
  provider: 'sysfs' | 'sim';
  /** Label of the gpiochip carrying the header pins (e.g. "pinctrl-bcm2711"); used to find its sysfs base. */
  chipLabel: string;
  /** Where the kernel's GPIO sysfs lives. Default "/sys/class/gpio". */
  sysfsRoot: string;
  /** Sim provider only: behaviour of simulated inputs, keyed by BCM pin. */
  simInputs: Record<number, SimInputConfig>;
}

export interface I2cBusConfig {
  id: string;
  kind: 'i2c';
  provider: 'i2c-dev' | 'sim';
  /** Character device, e.g. "/dev/i2c-1". */
  device: string;
}

export interface SerialBusConfig {
  id: string;
  kind: 'serial';
  provider: 'serialport' | 'sim';
  /** Device path, e.g. "/dev/serial0". */
  path: string;
  /** Line speed in bits per second. Default 9600 (the NMEA 0183 standard rate). */
  baudRate: number;
  /** Sim provider only: absolute path of a text file replayed line by line, in a loop. */
  replayFile: string | undefined;
  /** Sim provider only: pause between replayed lines, in milliseconds. Default 250. */
  replayLineIntervalMs: number;
}

export type BusConfig = GpioBusConfig | I2cBusConfig | SerialBusConfig;

export interface DeviceConfig {
  /** The device id of this child device (its key under "devices"). */
  id: string;
  compatible: string;
  /** Id of the bus it sits on (a key under "buses"). */
  bus: string;
  status: 'okay' | 'disabled';
  /** Free text for people ("front door contact"). */
  label: string | undefined;
  /**
   * What its readings go up to IoT Hub as in edge mode: "gateway" (default), on the gateway's own connection
   * named in `outpost-device-id` (the device has no IoT Hub identity); "own", on a connection of its own
   * device id on behalf of the gateway, which IoT Hub takes only for a child of the gateway (its device
   * scope). Device mode and mqtt send everything as the gateway either way.
   */
  cloudIdentity: 'gateway' | 'own';
  /** The file that set cloudIdentity (board.json or a variant), for the warning when it cannot apply. */
  cloudIdentityFile: string;
  /** How often a polled driver samples, in milliseconds; undefined for event-driven drivers. */
  pollIntervalMs: number | undefined;
  /** Driver-specific settings, already validated by the driver's schema. */
  settings: unknown;
}

export interface LoadedBoard {
  /** Absolute path of the board.json that was loaded. */
  file: string;
  /** Variant name (a file in boards/) and the absolute path of that file. */
  variant: string;
  variantFile: string;
  description: string;
  identity: { gatewayId: string };
  storage: StorageConfig;
  /** Kept as written: loadBoard checks them with parseUplinkConfig and parseHubConfig, whose owners parse again. */
  uplink: unknown;
  routes: unknown;
  hub: unknown;
  /** Prometheus endpoint on loopback; null or absent when board.json has no `metrics` section. */
  metrics?: MetricsConfig | null;
  /** The technician's HTTPS page; null or absent when board.json has no `page` section. */
  page?: PageConfig | null;
  /** OTA updates; every default when board.json has no `ota` section. Absent on boards built by hand in tests. */
  ota?: OtaConfig;
  buses: Record<string, BusConfig>;
  /** Every declared device, including disabled ones, in file order. */
  devices: DeviceConfig[];
}
