/** What the runtime and the technician's page use of drivers/: buses, the device manager, the registry. */
export { createBusProvider, type BusProvider } from './buses.js';
export {
  DeviceManager,
  READING_CONTENT_TYPE,
  startDevices,
  type DeviceStatus,
  type ReadingSink,
  type ReportedListener,
  type StartDevicesOptions,
} from './manager.js';
export type { DriverLog, LinkState, MethodResult, ReadingValues } from './model.js';
export { DRIVERS } from './registry.js';
export type { DeviceCounters, DeviceState } from './runner.js';
export { realTimers, type Timers } from './timers.js';
