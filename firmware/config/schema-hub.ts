import type { OptionSpec } from './schema-types.js';

/** Binary units, as IoT Hub quotes its message limits (256 KiB). */
const KIB_BYTES = 1024;
/** IoT Hub's own device-to-cloud message limit; children built for IoT Hub never send more. */
const MESSAGE_BYTES_MAX = 256 * KIB_BYTES;
/** A unit (seconds in a day) for the hub's day-long limits, not a limit itself. */
const DAY_SECS = 86_400;

const limit = (
  path: string,
  unit: string,
  int: OptionSpec['int'],
  example: number,
  invalid: unknown,
  doc: string,
): OptionSpec => ({
  path: `hub.${path}`,
  type: 'integer',
  unit,
  int,
  example,
  invalid,
  doc,
});

/** board.json `hub` and `routes`: the local MQTT server for child devices (firmware/hub/config.ts). */
export const HUB_OPTIONS: readonly OptionSpec[] = [
  {
    path: 'hub.tcp',
    type: 'object or false',
    default: '{ "host": "127.0.0.1", "port": 1883 }',
    example: false,
    invalid: 'yes',
    doc: 'Plain MQTT listener; `false` for none (TLS only). `OUTPOST_HUB_PORT` overrides the port.',
  },
  {
    path: 'hub.tcp.host',
    type: 'string',
    default: '"127.0.0.1"',
    example: '0.0.0.0',
    invalid: '',
    doc: 'Address to ' + 'listen on.',
  },
  {
    path: 'hub.tcp.port',
    type: 'integer',
    unit: 'TCP port',
    int: { min: 0, max: 65_535, default: 1883 },
    example: 1884,
    invalid: 99_999,
    doc: '0 picks a free port.',
  },
  {
    path: 'hub.tls',
    type: 'object or false',
    default: 'false (no TLS listener)',
    example: false,
    invalid: 1,
    doc: 'MQTT over TLS, the listener IoT Hub SDK children use (`GatewayHostName=` in their connection string).',
  },
  {
    path: 'hub.tls.host',
    type: 'string',
    default: '"127.0.0.1"',
    example: '0.0.0.0',
    invalid: 5,
    with: { certPath: 'c.pem', keyPath: 'k.pem' },
    doc: 'Address to listen on.',
  },
  {
    path: 'hub.tls.port',
    type: 'integer',
    unit: 'TCP port',
    int: { min: 0, max: 65_535, default: 8883 },
    example: 8883,
    invalid: 65_536,
    with: { certPath: 'c.pem', keyPath: 'k.pem' },
    doc: '0 picks a free port.',
  },
  {
    path: 'hub.tls.certPath',
    type: 'PEM file path',
    default: 'required with tls',
    example: 'hubca/hub-chain.crt',
    invalid: '',
    with: { keyPath: 'k.pem' },
    doc: "Server certificate chain, leaf first (`scripts/dev-ca.sh` makes one). Relative to board.json's folder.",
  },
  {
    path: 'hub.tls.keyPath',
    type: 'PEM file path',
    default: 'required with tls',
    example: 'hubca/hub.key',
    invalid: 3,
    with: { certPath: 'c.pem' },
    doc: "Private key of certPath. Relative to board.json's folder.",
  },
  {
    path: 'hub.hostNames',
    type: 'list of host names',
    default: '["localhost"]',
    range: '1-16 names, optionally ' + 'with :port',
    example: ['gateway.local', 'gw-17.site.example'],
    invalid: [],
    doc:
      "Names children dial (`GatewayHostName`), accepted as SAS token audience, with the azure uplink's IoT Hub " +
      "host and the scope document's `hubHostName`.",
  },
  limit(
    'clientsMax',
    'clients',
    { min: 1, max: 10_000, default: 100 },
    20,
    0,
    'Children connected at once; more ' + 'are refused (counted).',
  ),
  limit(
    'messageBytesMax',
    'bytes',
    { min: KIB_BYTES, max: MESSAGE_BYTES_MAX, default: MESSAGE_BYTES_MAX },
    65_536,
    512 * KIB_BYTES,
    'Largest PUBLISH (topic + payload) from a child; larger ones close the connection (counted).',
  ),
  limit(
    'inflightMax',
    'messages',
    { min: 1, max: 1_000, default: 16 },
    32,
    0,
    'QoS 1 publishes of one child ' + 'awaiting durability at once.',
  ),
  limit(
    'publishRatePerSec',
    'messages/s',
    { min: 1, max: 100_000, default: 50 },
    10,
    0,
    'Sustained publishes per ' + 'child (token bucket).',
  ),
  limit(
    'publishBurst',
    'messages',
    { min: 1, max: 100_000, default: 100 },
    20,
    0.5,
    'Publishes a child may send in ' + 'a burst above the rate.',
  ),
  limit(
    'identityRefreshSecs',
    'seconds',
    { min: 60, max: 7 * DAY_SECS, default: 3_600 },
    600,
    59,
    'Period of the ' + 'identity scope refresh while online.',
  ),
  limit(
    'tokenSkewSecs',
    'seconds',
    { min: 0, max: 3_600, default: 300 },
    60,
    -1,
    'Clock skew allowed on a SAS ' + "token's expiry.",
  ),
  limit(
    'tokenLifetimeSecsMax',
    'seconds',
    { min: 60, max: 365 * DAY_SECS, default: DAY_SECS },
    3_600,
    59,
    "Furthest a SAS token's expiry may lie ahead; a token valid for longer is refused (counted as " +
      '`token-lifetime`).',
  ),
  limit(
    'authFailuresMax',
    'attempts',
    { min: 1, max: 1_000, default: 5 },
    10,
    0,
    'Failed logins per client id and ' + 'per address within the window before refusing.',
  ),
  limit(
    'authFailureWindowSecs',
    'seconds',
    { min: 1, max: DAY_SECS, default: 60 },
    300,
    0,
    'Window of ' + 'authFailuresMax.',
  ),
  limit(
    'methodTimeoutSecs',
    'seconds',
    { min: 1, max: 300, default: 30 },
    10,
    301,
    'How long a direct method may ' + 'take before the caller gets 504.',
  ),
  limit(
    'pendingConnectionsMax',
    'sockets',
    { min: 1, max: 10_000, default: 128 },
    64,
    0,
    'Sockets open that have ' +
      'not authenticated yet, in all; past it new connections are closed at once (counted as `pending-max`).',
  ),
  limit(
    'pendingPerAddressMax',
    'sockets',
    { min: 1, max: 10_000, default: 32 },
    8,
    0,
    'Sockets open that have not ' + 'authenticated yet, from one address.',
  ),
  limit(
    'connectTimeoutSecs',
    'seconds',
    { min: 1, max: 60, default: 5 },
    10,
    61,
    'From accept to CONNACK (TLS ' + 'handshake included); a slower client is closed (counted as `connect-timeout`).',
  ),
  {
    path: 'hub.methods',
    type: 'object',
    default: '{} (no child-to-child calls)',
    example: { allow: {} },
    invalid: [],
    doc: 'Child-to-child direct methods; denied unless allowed here. The cloud and the gateway are not subject to it.',
  },
  {
    path: 'hub.methods.allow',
    type: 'object of caller → list of "<target>/<method>"',
    default: '{}',
    example: { panel: ['pump-1/start'], '*': ['logger/*'] },
    invalid: { panel: ['no-method'] },
    doc:
      'Callers (a device id or `<deviceId>/<moduleId>`, `*` within one id) and what each may call; a denied ' +
      'call gets 403 (counted as `method-acl`).',
  },
  {
    path: 'routes.<name>',
    type: 'string (route)',
    default: '{ "upstream": "FROM /messages/* INTO $upstream" }',
    range: 'at most 64 routes, 2048 characters each',
    example: 'FROM /messages/devices/door/* WHERE open = true INTO BrokeredEndpoint("/devices/siren/inputs/alarm")',
    invalid: 'FROM /nowhere INTO $upstream',
    doc:
      'Named routes in IoT Edge syntax: `FROM <source> [WHERE <condition>] INTO $upstream | ' +
      'BrokeredEndpoint("...")` (see the Local hub section of README.md).',
  },
];
