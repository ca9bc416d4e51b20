import { dirname, resolve } from 'node:path';
import { ConfigError } from '../config/errors.js';
import { displayPath } from '../config/layers.js';
import { ConfigNode } from '../config/node.js';
import { LANE_WEIGHT_MAX } from '../config/uplink-limits.js';
import { parseAzureSection } from './azure-mode.js';
import { BACKOFF_BASE_MS_DEFAULT, BACKOFF_MAX_MS_DEFAULT } from './backoff.js';
import { compileTopicTemplate } from './message.js';
import { fieldsOf, integerOption, optionalIntegerOption, optionSpec } from '../config/schema.js';
import type { MqttUplinkConfig, UplinkCommonConfig, UplinkConfig } from './config-types.js';
import { parseProvisioning } from './provisioning/config.js';
import { LANE_NAME_PATTERN, UPSTREAM_LANE } from '../store/names.js';

/**
 * The `uplink` section of board.json. Absent means `{ "protocol": "none" }`: no cloud. Every field, its
 * default, unit and range is declared in firmware/config/schema-uplink.ts and documented in
 * firmware/config/REFERENCE.md (generated from that table). Relative file paths are resolved against the
 * directory of board.json. Parsing checks shapes only; `loadUplinkFiles` reads the files at start, with
 * errors that name the field and the file.
 */

export type {
  AzureUplinkConfig,
  MqttUplinkConfig,
  SimUplinkConfig,
  UplinkCommonConfig,
  UplinkConfig,
} from './config-types.js';

/** The one variant allowed the embedded cloud: it must never stand in for a production board's uplink. */
export const SIM_VARIANT = 'sim';
/** Linux interface names: IFNAMSIZ is 16 bytes with the terminating NUL. */
const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,14}$/;
/** Interfaces the link watch polls: a gateway has a handful (eth0, wlan0, wwan0, ppp0); 16 is generous. */
const INTERFACES_MAX = 16;
/** Lanes besides "upstream"; the pump drains at most 16 lanes. */
const PRIORITY_LANES_MAX = 15;

/**
 * Validates board.json's `uplink` value (as the board loader hands it over) from `boardFile`. With `variant`
 * (the board loader passes it), the sim cloud is refused on any board but the sim one.
 */
export function parseUplinkConfig(value: unknown, boardFile: string, variant?: string): UplinkConfig {
  const shown = displayPath(boardFile);
  const node = new ConfigNode(value, '$.uplink', () => shown);
  if (node.missing) return { protocol: 'none' };
  const protocol = node.field('protocol').oneOf(['mqtt', 'azure', 'sim', 'none'] as const);
  // "none" accepts every known field, so a cloud can be switched off without deleting its settings.
  node.keys(fieldsOf('uplink', protocol === 'none' ? undefined : protocol));
  if (protocol === 'none') return { protocol };
  const baseDir = dirname(resolve(boardFile));
  const file = (key: string) => {
    const path = node.field(key).optionalString();
    return path === undefined ? undefined : resolve(baseDir, path);
  };
  const common = parseCommon(node, shown, file);
  if (protocol === 'sim') {
    if (variant !== undefined && variant !== SIM_VARIANT) {
      node.field('protocol').fail(`"mqtt", "azure" or "none" ("sim" is for the ${SIM_VARIANT} board only)`);
    }
    return {
      protocol,
      ...common,
      linkUpSecs: integerOption(node.field('linkUpSecs'), 'uplink.linkUpSecs'),
      linkDownSecs: integerOption(node.field('linkDownSecs'), 'uplink.linkDownSecs'),
    };
  }
  if ((common.certFile === undefined) !== (common.keyFile === undefined)) {
    node.field(common.certFile ? 'keyFile' : 'certFile').fail('certFile and keyFile given together');
  }
  if (protocol === 'mqtt') return parseMqtt(node, common);
  const connectionString = node.field('connectionString').optionalString();
  const connectionStringFile = file('connectionStringFile');
  const dps = node.field('provisioning');
  const provisioning = dps.missing ? undefined : parseProvisioning(dps, boardFile);
  if ([connectionString, connectionStringFile, provisioning].filter((v) => v !== undefined).length !== 1) {
    node.field('connectionString').fail('exactly one of connectionString, connectionStringFile and provisioning');
  }
  // With DPS the certificate is the enrollment's, used with DPS and then with the hub it assigns.
  if (provisioning !== undefined && common.certFile !== undefined)
    node.field('certFile').fail('no certFile with ' + 'provisioning (its certPath is used with the hub too)');
  const azure = parseAzureSection(node.field('azure'), baseDir, provisioning !== undefined);
  return {
    protocol,
    ...common,
    connectionString,
    connectionStringFile,
    provisioning,
    azure,
    cloudConnectionsMax: integerOption(node.field('cloudConnectionsMax'), 'uplink.cloudConnectionsMax'),
    cloudConnectionIdleSecs: integerOption(node.field('cloudConnectionIdleSecs'), 'uplink.cloudConnectionIdleSecs'),
    cloudConnectsPerSecMax: integerOption(node.field('cloudConnectsPerSecMax'), 'uplink.cloudConnectsPerSecMax'),
  };
}

/**
 * `uplink.bytesPerSecMax`, or its deprecated name `maxBytesPerSec` (before the units-last naming rule): read,
 * with a warning naming the file and field. Both given is an error naming both.
 */
function bandwidthCap(node: ConfigNode, boardFile: string): number {
  const current = node.field('bytesPerSecMax');
  const old = node.field('maxBytesPerSec');
  if (old.missing) return integerOption(current, 'uplink.bytesPerSecMax');
  if (!current.missing) {
    const where = { file: boardFile, jsonPath: '$.uplink.maxBytesPerSec' };
    const both = 'both $.uplink.bytesPerSecMax and $.uplink.maxBytesPerSec';
    throw new ConfigError('INVALID', where, 'only bytesPerSecMax (maxBytesPerSec is its deprecated name)', both);
  }
  const value = integerOption(old, 'uplink.maxBytesPerSec');
  process.emitWarning(`${boardFile}: $.uplink.maxBytesPerSec is deprecated: name it bytesPerSecMax`, {
    type: 'DeprecationWarning',
    code: DEPRECATED_FIELD_WARNING,
  });
  return value;
}

/** The code of the warning a deprecated board.json or settings field gives (process 'warning' listeners). */
export const DEPRECATED_FIELD_WARNING = 'OUTPOST_DEPRECATED_FIELD';

function parseCommon(
  node: ConfigNode,
  boardFile: string,
  file: (key: string) => string | undefined,
): UplinkCommonConfig {
  const backoff = node.field('backoff');
  backoff.optionalRecord();
  if (!backoff.missing) backoff.keys(fieldsOf('uplink.backoff'));
  const baseMs = backoff.missing
    ? BACKOFF_BASE_MS_DEFAULT
    : integerOption(backoff.field('baseMs'), 'uplink.backoff.baseMs');
  const baseRange = optionSpec('uplink.backoff.baseMs').int!;
  const maxMs = backoff.missing
    ? BACKOFF_MAX_MS_DEFAULT
    : backoff.field('maxMs').integer({
        min: baseMs,
        max: baseRange.max,
        unit: 'ms, at least baseMs',
        default: Math.max(baseMs, BACKOFF_MAX_MS_DEFAULT),
      });
  const interfacesNode = node.field('interfaces');
  const interfaces = interfacesNode.missing
    ? []
    : interfacesNode
        .items(`a list of at most ${INTERFACES_MAX} interface names`, 0, INTERFACES_MAX)
        .map((item) => item.string({ pattern: INTERFACE_NAME, describe: 'a network interface name like "eth0"' }));
  return {
    boardFile,
    inflightMax: integerOption(node.field('inflightMax'), 'uplink.inflightMax'),
    bytesPerSecMax: bandwidthCap(node, boardFile),
    keepaliveSecs: optionalIntegerOption(node.field('keepaliveSecs'), 'uplink.keepaliveSecs'),
    connectTimeoutMs: optionalIntegerOption(node.field('connectTimeoutMs'), 'uplink.connectTimeoutMs'),
    publishTimeoutMs: integerOption(node.field('publishTimeoutMs'), 'uplink.publishTimeoutMs'),
    linkUpJitterMsMax: integerOption(node.field('linkUpJitterMsMax'), 'uplink.linkUpJitterMsMax'),
    bootJitterMsMax: integerOption(node.field('bootJitterMsMax'), 'uplink.bootJitterMsMax'),
    backoff: { baseMs, maxMs },
    interfaces,
    modemFlagPath: file('modemFlagPath'),
    priorityLanes: parsePriorityLanes(node.field('priorityLanes')),
    caFile: file('caFile'),
    certFile: file('certFile'),
    keyFile: file('keyFile'),
  };
}

function parsePriorityLanes(node: ConfigNode): Array<{ lane: string; weight: number }> {
  if (node.missing) return [];
  const seen = new Set<string>([UPSTREAM_LANE]);
  return node.items(`a list of at most ${PRIORITY_LANES_MAX} lanes`, 0, PRIORITY_LANES_MAX).map((item) => {
    item.keys(['lane', 'weight']);
    const laneNode = item.field('lane');
    const describe = 'a lane name (letters, digits, . _ -), not "upstream" nor a repeat';
    const lane = laneNode.string({ pattern: LANE_NAME_PATTERN, describe });
    if (seen.has(lane)) laneNode.fail(describe);
    seen.add(lane);
    return { lane, weight: item.field('weight').integer({ min: 1, max: LANE_WEIGHT_MAX, default: 1 }) };
  });
}

function parseMqtt(node: ConfigNode, common: UplinkCommonConfig): MqttUplinkConfig {
  const describe = 'mqtt://host:port or mqtts://host:port';
  const url = node.field('url').string({ pattern: /^mqtts?:\/\/[^/]+/, describe });
  const templateNode = node.field('topicTemplate');
  const topicTemplate = templateNode.optionalString();
  if (topicTemplate !== undefined) {
    try {
      compileTopicTemplate(topicTemplate, 'gateway');
    } catch (err) {
      templateNode.fail(`a topic template: ${(err as Error).message}`);
    }
  }
  const configTopicNode = node.field('configTopic');
  const configTopic = configTopicNode.optionalString();
  if (configTopic !== undefined && (/[+#]/.test(configTopic) || /\{(?!gatewayId\})/.test(configTopic))) {
    configTopicNode.fail('a topic without + or # whose only placeholder is {gatewayId}');
  }
  if (common.caFile !== undefined && !url.startsWith('mqtts:')) {
    node.field('caFile').fail('no caFile with a plain mqtt:// url');
  }
  return {
    protocol: 'mqtt',
    ...common,
    url,
    username: node.field('username').optionalString(),
    password: node.field('password').optionalString(),
    topicTemplate,
    configTopic,
    protocolVersion: integerOption(node.field('protocolVersion'), 'uplink.protocolVersion') as 4 | 5,
  };
}

/** The IoT Hub host of an azure uplink's connection string (children's SAS tokens name it as audience). */
export function azureHubHost(connectionString: string | undefined): string | undefined {
  return connectionString === undefined ? undefined : /(?:^|;)HostName=([^;]+)/.exec(connectionString)?.[1];
}
