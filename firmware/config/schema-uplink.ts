import { PROVISIONING_OPTIONS } from './schema-provisioning.js';
import type { OptionSpec } from './schema-types.js';
import {
  BACKOFF_BASE_MS_DEFAULT,
  BACKOFF_MAX_MS_DEFAULT,
  CLOUD_CONNECTIONS_MAX_DEFAULT,
  CLOUD_CONNECTION_IDLE_SECS_DEFAULT,
  CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT,
  LIMIT_RANGES,
} from './uplink-limits.js';

/** Longest backoff between two connects, ms: an hour, beyond which a gateway looks dead to its operator. */
const BACKOFF_MS_MAX = 3_600_000;
/** IoT Hub closes a connection whose keepalive is above 1740 s (29 min); mqtt brokers accept it too. */
const KEEPALIVE_SECS_MAX = 1_740;
/** Two minutes is beyond any cellular attach and TLS handshake; longer only delays the retry. */
const CONNECT_TIMEOUT_MS_MAX = 120_000;
/** Upstream connections in edge mode: each is a TLS session and an SDK client (about 1 MB on a Pi). */
const CLOUD_CONNECTIONS_MAX = 1_000;
/** A day: an identity silent longer than that has no reason to hold a connection open. */
const CLOUD_CONNECTION_IDLE_SECS_MAX = 86_400;
/** IoT Hub's own connect throttle is per hub unit; more than this from one gateway is a reconnect storm. */
const CLOUD_CONNECTS_PER_SEC_MAX = 100;
/** The simulated link's cycle: at most an hour, so a demo shows the drop while someone watches. */
const SIM_CYCLE_SECS_MAX = 3_600;

const [inflightMin, inflightMax, inflightDefault] = LIMIT_RANGES.inflightMax;
const [rateMin, rateMax, rateDefault] = LIMIT_RANGES.bytesPerSecMax;
const [publishMin, publishMax, publishDefault] = LIMIT_RANGES.publishTimeoutMs;
const [connectMin, , connectDefault] = LIMIT_RANGES.connectTimeoutMs;
const [linkUpJitterMin, linkUpJitterMax, linkUpJitterDefault] = LIMIT_RANGES.linkUpJitterMsMax;
const [bootJitterMin, bootJitterMax] = LIMIT_RANGES.bootJitterMsMax;
const CLOUD: OptionSpec['protocols'] = ['mqtt', 'azure'];
const PEM = 'PEM file path';

/** board.json `uplink`: how the gateway reaches its cloud (firmware/uplink/config.ts parses it). */
export const UPLINK_OPTIONS: readonly OptionSpec[] = [
  {
    path: 'uplink.protocol',
    type: 'string',
    default: '"none" (no uplink section: no cloud)',
    range: '"mqtt", ' + '"azure", "sim", "none"',
    example: 'mqtt',
    invalid: 'carrier-pigeon',
    doc:
      '"mqtt": any MQTT 3.1.1/5 broker (mqtt.js). "azure": Azure IoT Hub (azure-iot-device-mqtt). "sim": an ' +
      'embedded cloud on loopback with a link that drops (sim board only). "none": store only.',
  },
  {
    path: 'uplink.url',
    type: 'string',
    default: 'required (mqtt)',
    range: 'mqtt://host:port or mqtts://host:port',
    protocols: ['mqtt'],
    example: 'mqtts://broker.example:8883',
    invalid: 'http://broker',
    doc: 'The broker.',
  },
  {
    path: 'uplink.username',
    type: 'string',
    default: 'none',
    protocols: ['mqtt'],
    example: 'gw-17',
    invalid: 17,
    doc: 'MQTT user name.',
  },
  {
    path: 'uplink.password',
    type: 'string',
    default: 'none',
    protocols: ['mqtt'],
    example: 'secret',
    invalid: false,
    doc: 'MQTT password; never logged. Prefer a client certificate.',
  },
  {
    path: 'uplink.topicTemplate',
    type: 'string',
    default: '"outpost/{gatewayId}/{deviceId}/telemetry"',
    protocols: ['mqtt'],
    range: 'placeholders {gatewayId} {deviceId} {lane} {seq} {messageId}',
    example: 'site/{gatewayId}/{deviceId}',
    invalid: 'a/{nope}',
    doc: 'Topic of each upstream message.',
  },
  {
    path: 'uplink.configTopic',
    type: 'string',
    default: '"outpost/{gatewayId}/config"',
    protocols: ['mqtt'],
    range: 'no + or #; placeholder {gatewayId}',
    example: 'cfg/{gatewayId}',
    invalid: 'cfg/#',
    doc: 'Retained cloud settings document (ttlSecs, quotaBytes, ' + 'bytesPerSecMax).',
  },
  {
    path: 'uplink.protocolVersion',
    type: 'integer',
    protocols: ['mqtt'],
    int: { min: 4, max: 5, default: 5 },
    example: 4,
    invalid: 3,
    doc: '5: ids and times travel as MQTT 5 user properties; 4: MQTT 3.1.1 (put {seq} or {messageId} in the topic).',
  },
  {
    path: 'uplink.connectionString',
    type: 'string',
    default: 'one of connectionString, connectionStringFile, ' + 'provisioning (azure)',
    protocols: ['azure'],
    range: 'HostName=<hub>;DeviceId=<gatewayId>;SharedAccessKey=<key> or ...;x509=true',
    example: 'HostName=hub.azure-devices.net;DeviceId=gw-1;SharedAccessKey=a2V5',
    invalid: 'HostName=hub.azure-devices.net;DeviceId=not-this-gateway;SharedAccessKey=a2V5',
    doc:
      "The gateway's IoT Hub device identity; DeviceId must equal identity.gatewayId. Its HostName is also " +
      'accepted as SAS audience from children.',
  },
  {
    path: 'uplink.connectionStringFile',
    type: 'file path',
    default: 'one of connectionString, connectionStringFile, ' + 'provisioning (azure)',
    protocols: ['azure'],
    example: '/etc/outpost/connection-string',
    invalid: 7,
    with: { connectionString: null },
    doc:
      "A file holding the connection string (at most 4 KiB), kept out of board.json. Relative to board.json's " +
      'folder.',
  },
  ...PROVISIONING_OPTIONS,
  {
    path: 'uplink.azure.mode',
    type: 'string',
    default: '"edge" with edgeHubConnectionStringFile, else "device"',
    range: '"edge", "device"',
    protocols: ['azure'],
    example: 'device',
    invalid: 'transparent',
    doc:
      '"edge": the gateway is an IoT Edge device and outpost its $edgeHub: the child list comes from IoT ' +
      'Hub\'s device-scope API. "device": a plain device identity, children from the twin\'s outpostScope. ' +
      'With provisioning, "edge" needs no $edgeHub file: the gateway sets the module up itself.',
  },
  {
    path: 'uplink.azure.edgeHubConnectionStringFile',
    type: 'file path',
    default: 'none (device mode)',
    protocols: ['azure'],
    example: '/etc/outpost/edgehub-connection-string',
    invalid: 7,
    doc:
      "A file holding the $edgeHub module's connection string (DeviceId=<gatewayId>;ModuleId=$edgeHub; " +
      "SharedAccessKey=...; az iot hub module-identity connection-string show). Relative to board.json's folder.",
  },
  {
    path: 'uplink.cloudConnectionsMax',
    type: 'integer',
    unit: 'connections',
    protocols: ['azure'],
    int: { min: 1, max: CLOUD_CONNECTIONS_MAX, default: CLOUD_CONNECTIONS_MAX_DEFAULT },
    example: 50,
    invalid: 0,
    doc: "Edge mode: upstream connections of children at once (edgeHub's MaxConnectedClients); an idle one makes room.",
  },
  {
    path: 'uplink.cloudConnectionIdleSecs',
    type: 'integer',
    unit: 'seconds',
    protocols: ['azure'],
    int: { min: 1, max: CLOUD_CONNECTION_IDLE_SECS_MAX, default: CLOUD_CONNECTION_IDLE_SECS_DEFAULT },
    example: 600,
    invalid: 0,
    doc:
      "Edge mode: a child's upstream connection without traffic this long is closed (edgeHub's " +
      'CloudConnectionIdleTimeoutSecs).',
  },
  {
    path: 'uplink.cloudConnectsPerSecMax',
    type: 'integer',
    unit: 'connects/s',
    protocols: ['azure'],
    int: { min: 1, max: CLOUD_CONNECTS_PER_SEC_MAX, default: CLOUD_CONNECTS_PER_SEC_MAX_DEFAULT },
    example: 5,
    invalid: 0,
    doc: 'Edge mode: new upstream connections per second, all children together (IoT Hub throttles connects).',
  },
  {
    path: 'uplink.caFile',
    type: PEM,
    default: "the system's roots",
    protocols: CLOUD,
    example: 'certs/ca.pem',
    invalid: '',
    with: { url: 'mqtts://broker.example:8883' },
    doc: "CA certificate(s) of the broker or hub (mqtts only for mqtt). Relative to board.json's folder.",
  },
  {
    path: 'uplink.certFile',
    type: PEM,
    default: 'none',
    protocols: CLOUD,
    example: 'certs/gw.pem',
    invalid: '',
    with: { keyFile: 'certs/gw.key' },
    doc: "Client certificate (with keyFile): X.509 authentication. Relative to board.json's folder.",
  },
  {
    path: 'uplink.keyFile',
    type: PEM,
    default: 'none',
    protocols: CLOUD,
    example: 'certs/gw.key',
    invalid: '',
    with: { certFile: 'certs/gw.pem' },
    doc: "Private key of certFile. Relative to board.json's folder.",
  },
  {
    path: 'uplink.inflightMax',
    type: 'integer',
    unit: 'messages',
    int: { min: inflightMin, max: inflightMax, default: inflightDefault },
    example: 20,
    invalid: 0,
    doc: "Publishes awaiting the broker's acknowledgement at once.",
  },
  {
    path: 'uplink.bytesPerSecMax',
    type: 'integer',
    unit: 'bytes/s',
    int: { min: rateMin, max: rateMax, default: rateDefault },
    example: 2048,
    invalid: -1,
    doc: 'Cap on message bytes sent per second (metered cellular); 0 = none. The cloud ' + 'may override it.',
  },
  {
    path: 'uplink.maxBytesPerSec',
    type: 'integer',
    unit: 'bytes/s',
    int: { min: rateMin, max: rateMax, default: rateDefault },
    example: 2048,
    invalid: -1,
    doc:
      'Deprecated name of bytesPerSecMax: still read, with a warning naming the file and field; ' +
      'both given is an error.',
  },
  {
    path: 'uplink.backoff.baseMs',
    type: 'integer',
    unit: 'ms',
    int: { min: 1, max: BACKOFF_MS_MAX, default: BACKOFF_BASE_MS_DEFAULT },
    example: 1000,
    invalid: 0,
    doc: 'First reconnect delay; it doubles per failure, with full jitter.',
  },
  {
    path: 'uplink.backoff.maxMs',
    type: 'integer',
    unit: 'ms',
    default: String(BACKOFF_MAX_MS_DEFAULT),
    range: `baseMs to ${BACKOFF_MS_MAX}`,
    example: 30_000,
    invalid: 'soon',
    doc: 'Longest reconnect delay.',
  },
  {
    path: 'uplink.keepaliveSecs',
    type: 'integer',
    unit: 'seconds',
    default: '30 (mqtt), 60 (azure)',
    int: { min: 1, max: KEEPALIVE_SECS_MAX },
    example: 120,
    invalid: 0,
    doc: 'MQTT keepalive: a silent link is noticed after about 1.5 × this. Longer saves ' + 'cellular data.',
  },
  {
    path: 'uplink.connectTimeoutMs',
    type: 'integer',
    unit: 'ms',
    default: String(connectDefault),
    int: { min: connectMin, max: CONNECT_TIMEOUT_MS_MAX },
    example: 30_000,
    invalid: 50,
    doc: 'A connect (TCP, TLS, CONNACK) that has not finished by then is torn down and retried after the backoff.',
  },
  {
    path: 'uplink.linkUpJitterMsMax',
    type: 'integer',
    unit: 'ms',
    int: { min: linkUpJitterMin, max: linkUpJitterMax, default: linkUpJitterDefault },
    example: 500,
    invalid: 1_001,
    doc:
      'Ceiling of the random delay from a link-up notice to the reconnect, so a ' +
      'fleet whose links return together is spread; 0 = at once. At most 1 s, the link-up drain budget.',
  },
  {
    path: 'uplink.bootJitterMsMax',
    type: 'integer',
    unit: 'ms',
    int: { min: bootJitterMin, max: bootJitterMax, default: linkUpJitterDefault },
    example: 5_000,
    invalid: -1,
    doc:
      'Ceiling of the random delay before the first connect after start, so a ' +
      'site that power-cycles together does not connect in the same second; 0 = at once.',
  },
  {
    path: 'uplink.publishTimeoutMs',
    type: 'integer',
    unit: 'ms',
    int: { min: publishMin, max: publishMax, default: publishDefault },
    example: 60_000,
    invalid: 99,
    doc: 'A publish unacknowledged this long means a dead link (a black hole): the ' + 'connection is torn down.',
  },
  {
    path: 'uplink.interfaces',
    type: 'list of interface names',
    default: '[]',
    range: 'at most 16',
    protocols: CLOUD,
    example: ['eth0', 'wwan0'],
    invalid: ['no spaces'],
    doc: 'Reconnect at once when one of these comes up ' + '(/sys/class/net/<if>/operstate).',
  },
  {
    path: 'uplink.modemFlagPath',
    type: 'file path',
    default: 'none',
    protocols: CLOUD,
    example: '/run/outpost/link-up',
    invalid: '',
    doc: "A dialer hook touches this file on link-up: reconnect at once. Relative to board.json's folder.",
  },
  {
    path: 'uplink.priorityLanes',
    type: 'list of { "lane": string, "weight": integer 1-1000 }',
    default: '[]',
    range: 'at most 15, not "upstream"',
    protocols: CLOUD,
    example: [{ lane: 'alarms', weight: 4 }],
    invalid: [{ lane: 'upstream' }],
    doc: 'Lanes ' + 'drained beside "upstream" (weight 1), by weight.',
  },
  {
    path: 'uplink.linkUpSecs',
    type: 'integer',
    unit: 'seconds',
    protocols: ['sim'],
    int: { min: 1, max: SIM_CYCLE_SECS_MAX, default: 40 },
    example: 30,
    invalid: 0,
    doc: 'sim: how long the simulated link stays up in each cycle.',
  },
  {
    path: 'uplink.linkDownSecs',
    type: 'integer',
    unit: 'seconds',
    protocols: ['sim'],
    int: { min: 0, max: SIM_CYCLE_SECS_MAX, default: 20 },
    example: 10,
    invalid: -5,
    doc: 'sim: how long it then stays down; 0: no cycle, the link changes only by hand. ' + 'SIGUSR1 flips it.',
  },
];
