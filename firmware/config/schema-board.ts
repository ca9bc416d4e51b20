import type { OptionSpec } from './schema-types.js';

/** Binary units: sizes on disk are quoted in MiB throughout the reference. */
const MIB_BYTES = 1024 * 1024;
/** A TTL longer than a year is almost certainly a unit mistake (ms written as secs). */
const STORAGE_TTL_SECS_MAX = 365 * 24 * 3600;
/** Sync and checkpoint periods beyond an hour would make every crash lose an hour of acknowledgements. */
const STORAGE_INTERVAL_MS_MAX = 3_600_000;

/** identity, storage, metrics, ota and page: the sections firmware/config parses itself. */
export const BOARD_OPTIONS: readonly OptionSpec[] = [
  {
    path: 'identity.gatewayId',
    type: 'string',
    default: 'required; with uplink.provisioning, the registration id',
    range: 'IoT Hub device id rules (1-128 of A-Z ' + 'a-z 0-9 - . : _ @ ...)',
    example: 'pump-house-7',
    invalid: 'has spaces',
    doc:
      "This gateway's id: the DeviceId of its IoT Hub identity (azure), `{gatewayId}` in mqtt topics, the first " +
      'part of every message id.',
  },
  {
    path: 'storage.dataDir',
    type: 'directory path',
    default: '"./data"',
    example: '/var/lib/outpost',
    invalid: '',
    doc:
      'Where the ring log, identity cache, twins and saved cloud settings live. Relative to the folder of ' +
      'board.json. `OUTPOST_DATA_DIR` overrides it.',
  },
  {
    path: 'storage.segmentBytes',
    type: 'integer',
    unit: 'bytes',
    int: { min: MIB_BYTES, max: 1024 * MIB_BYTES, default: 16 * MIB_BYTES },
    example: 4 * MIB_BYTES,
    invalid: 12,
    doc: 'Size of one log segment file. Quota drops delete whole segments, so smaller segments drop less at a time.',
  },
  {
    path: 'storage.recordBytesMax',
    type: 'integer',
    unit: 'bytes',
    default: '270336 (264 KiB), at most ' + 'segmentBytes / 4',
    range: '1024 to segmentBytes / 4',
    example: 65_536,
    invalid: 10,
    doc: 'Largest single record (a 256 KiB hub message with its properties fits the default).',
  },
  {
    path: 'storage.quotaBytes',
    type: 'integer',
    unit: 'bytes',
    default: '1073741824 (1 GiB)',
    range: '4 × ' + 'segmentBytes to 1 TiB',
    example: 256 * MIB_BYTES,
    invalid: MIB_BYTES,
    doc: 'Disk space the log may use (segments and checkpoint), never exceeded.',
  },
  {
    path: 'storage.quotaPolicy',
    type: 'string',
    default: '"drop-oldest"',
    range: '"drop-oldest", "reject-new"',
    example: 'reject-new',
    invalid: 'drop-newest',
    doc:
      'At the quota: delete the oldest whole segment (counted as dropped), or refuse new records (children get ' +
      'no PUBACK).',
  },
  {
    path: 'storage.ttlSecs',
    type: 'integer',
    unit: 'seconds',
    int: { min: 1, max: STORAGE_TTL_SECS_MAX, default: 7200 },
    example: 86_400,
    invalid: 0,
    doc:
      'Age after which an unsent record is deleted (store time: robust to wall-clock steps). The cloud may ' +
      'override it.',
  },
  {
    path: 'storage.syncMode',
    type: 'string',
    default: '"always"',
    range: '"always"',
    example: 'always',
    invalid: 'interval',
    doc:
      '"always" acknowledges only records on disk (group commit). The store\'s "interval" and "none" ' +
      'acknowledge records before they are durable: refused here, set in code by tests and benchmarks only.',
  },
  {
    path: 'storage.syncIntervalMs',
    type: 'integer',
    unit: 'ms',
    int: { min: 1, max: STORAGE_INTERVAL_MS_MAX, default: 10 },
    example: 50,
    invalid: 0,
    doc: 'Sync period for syncMode "interval".',
  },
  {
    path: 'storage.checkpointIntervalMs',
    type: 'integer',
    unit: 'ms',
    int: { min: 1, max: STORAGE_INTERVAL_MS_MAX, default: 1000 },
    example: 500,
    invalid: -1,
    doc: 'How often the delivery cursor is saved; after a crash at most this much of acknowledged data goes up again.',
  },
  {
    path: 'metrics.port',
    type: 'integer',
    unit: 'TCP port on 127.0.0.1',
    int: { min: 0, max: 65_535, default: 9464 },
    example: 9464,
    invalid: 70_000,
    doc:
      'Serves Prometheus text on 127.0.0.1:<port>/metrics. Without a `metrics` section (or with `false`) there ' +
      'is no metrics server; 0 picks a free port.',
  },
  {
    path: 'ota.updateHealthSecs',
    type: 'integer',
    unit: 'seconds',
    int: { min: 10, max: 3600, default: 120 },
    example: 300,
    invalid: 5,
    doc:
      'After an OTA update, the time the new release has from its start to be READY with the store open and, ' +
      'when an uplink is configured, connected to the cloud; past it the launcher rolls back to the previous ' +
      'release. Long enough for a slow cellular attach; under 10 s no board even opens its store.',
  },
  {
    path: 'ota.downloadBytesMax',
    type: 'integer',
    unit: 'bytes',
    int: { min: MIB_BYTES, max: 512 * MIB_BYTES, default: 128 * MIB_BYTES },
    example: 64 * MIB_BYTES,
    invalid: 1024,
    doc:
      'Largest update artifact downloaded (a release is 30-45 MB). Free space must also hold the rest of the ' +
      "artifact beside the ring log's unused quota, which a download never takes.",
  },
  {
    path: 'ota.caFile',
    type: 'PEM file path',
    default: "Node's CA roots",
    example: 'ota-ca.pem',
    invalid: 5,
    doc:
      "CA bundle trusted for the artifact's HTTPS host instead of Node's roots (a private server); a blob " +
      "SAS URL needs none. Relative to board.json's folder.",
  },
  {
    path: 'page.listen',
    type: 'string',
    default: 'required with page',
    range: '"<address>:<port>"',
    example: '0.0.0.0:8443',
    invalid: '8443',
    doc:
      "The technician's HTTPS page (README, Operating a gateway). Without a `page` section (or with `false`) " +
      'there is no page server and no port is opened; port 0 picks a free port.',
  },
  {
    path: 'page.passwordFile',
    type: 'file path',
    default: '"/etc/outpost/page-passwd"',
    with: { listen: '0.0.0.0:8443' },
    example: 'page-passwd',
    invalid: 5,
    doc: "scrypt hash written by `outpost passwd`; relative to board.json's folder.",
  },
];
