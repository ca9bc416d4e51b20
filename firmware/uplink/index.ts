/** The uplink's public face for firmware/main.ts and the hub/twin modules. */
export { parseUplinkConfig, type UplinkConfig } from './config.js';
export { startUplink, UPSTREAM_LANE_NAME, type UplinkService, type UplinkServiceOptions, type UplinkStatus } from './service.js';
export type { SettingsStatus } from './settings.js';
export type { ResyncHook } from './pump.js';
export { UplinkError, type UplinkTransport } from './types.js';
