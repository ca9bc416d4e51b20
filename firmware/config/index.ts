/** Board configuration: the public face for firmware/main.ts and the other modules. */
export { BOARD_EXTENDS_DEPTH_MAX, loadBoard, loadVariant, type LoadBoardOptions } from './board.js';
export { checkBoard, runBoardCheckCli, type BoardCheckResult } from './check.js';
export { ConfigError, ConfigErrors } from './errors.js';
export { METRICS_PORT_DEFAULT, type MetricsConfig } from './metrics.js';
export { OTA_UPDATE_HEALTH_SECS_DEFAULT, type OtaConfig } from './ota.js';
export { PAGE_PASSWORD_FILE_DEFAULT, type PageConfig } from './page.js';
export { ConfigNode } from './node.js';
export { STORAGE_DEFAULTS, type QuotaPolicy, type StorageConfig, type SyncMode } from './storage.js';
export type { BusConfig, BusKind, DeviceConfig, GpioBusConfig, I2cBusConfig, LoadedBoard, SerialBusConfig } from './types.js';
export { renderReference } from './reference.js';
export { OPTIONS, fieldsOf, type OptionSpec } from './schema.js';
