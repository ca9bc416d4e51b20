import type { StoredRecord } from '../store/types.js';
import { UplinkError, type UplinkMessage } from './types.js';

/**
 * How a stored record becomes an upstream message. The store keeps properties as plain strings; the router
 * that appends a record puts the system fields under these reserved keys (all start with `$`, which IoT Hub
 * does not allow in application property names, so they cannot collide with a producer's own).
 */
export const RECORD_KEY = {
  /** The device the record came from; absent means the gateway itself. */
  deviceId: '$deviceId',
  contentType: '$contentType',
  contentEncoding: '$contentEncoding',
  /** The module output a child module sent the message to (IoT Edge's `$.on`). */
  outputName: '$outputName',
  /**
   * Set ('1') on a reading of one of the gateway's own drivers: no IoT Hub identity of its own, it goes up on
   * the gateway's device connection named in `outpost-device-id` (edge mode too). Not set for a driver with
   * cloudIdentity "own", which goes as itself in edge mode. Children cannot set it: the hub drops their `$`
   * properties.
   */
  gatewayDevice: '$gatewayDevice',
} as const;

/** Properties outpost adds to every upstream message, under these names, for the far side to use. */
export const UPSTREAM_KEY = {
  /** `<gatewayId>:<lane>:<seq>` (mqtt; IoT Hub gets it as the message id `$.mid`). */
  messageId: 'outpost-msg-id',
  /** ISO 8601 enqueue time (mqtt; IoT Hub gets it as `iothub-creation-time-utc`). */
  enqueuedAt: 'outpost-enqueued-at',
  /** The originating device: the gateway's id, or a child device's. */
  deviceId: 'outpost-device-id',
} as const;

/**
 * Names no producer may give an upstream message: `$` keys are the record's own or system properties,
 * `outpost-*` the gateway's attribution (device id, message id, enqueue time), `iothub-*` IoT Hub's
 * (creation time, connection device id). Compared without case: IoT Hub and consumers may not tell case apart.
 */
export function isReservedPropertyName(key: string): boolean {
  const lower = key.toLowerCase();
  return lower.startsWith('$') || lower.startsWith('outpost-') || lower.startsWith('iothub-');
}

/** The stable id the far side deduplicates on; lane and sequence survive restarts, so retries repeat it. */
export function stableMessageId(gatewayId: string, lane: string, seq: number): string {
  return `${gatewayId}:${lane}:${seq}`;
}

export function recordToMessage(gatewayId: string, lane: string, record: StoredRecord): UplinkMessage {
  const properties: Record<string, string> = {};
  // Every transport adds the gateway's attribution after these; a record's own property of such a name (one
  // stored before the hub refused them, or by any other producer) would stand beside it, and IoT Hub and
  // consumers would see the record's first.
  for (const [key, value] of Object.entries(record.properties)) {
    if (!isReservedPropertyName(key)) properties[key] = value;
  }
  return {
    messageId: stableMessageId(gatewayId, lane, record.seq),
    lane,
    seq: record.seq,
    deviceId: record.properties[RECORD_KEY.deviceId] || gatewayId,
    enqueuedAtMs: record.enqueuedAtMs,
    contentType: record.properties[RECORD_KEY.contentType] ?? '',
    contentEncoding: record.properties[RECORD_KEY.contentEncoding] ?? '',
    properties,
    body: record.body,
  };
}

const TOPIC_FIELDS = ['gatewayId', 'deviceId', 'lane', 'seq', 'messageId'] as const;
type TopicField = (typeof TOPIC_FIELDS)[number];

/**
 * Checks a topic template once, at start-up: only known `{placeholders}`, no wildcards. Returns a renderer.
 * `{seq}` and `{messageId}` exist for MQTT 3.1.1 brokers, where the topic is the only place besides the
 * payload that can carry the stable id.
 */
export function compileTopicTemplate(template: string, gatewayId: string): (message: UplinkMessage) => string {
  if (template.length === 0 || /[+#]/.test(template)) {
    throw new UplinkError(
      'INVALID',
      `"topicTemplate" must be a non-empty topic without + or #, got ${JSON.stringify(template)}`,
    );
  }
  for (const match of template.matchAll(/\{([^}]*)\}/g)) {
    if (!TOPIC_FIELDS.includes(match[1] as TopicField)) {
      throw new UplinkError(
        'INVALID',
        `"topicTemplate" has unknown placeholder {${match[1]}}; known: ${TOPIC_FIELDS.join(', ')}`,
      );
    }
  }
  return (message) =>
    template.replace(/\{([^}]*)\}/g, (_all, field: TopicField) =>
      topicLevelSafe(field === 'gatewayId' ? gatewayId : String(message[field])),
    );
}

/** Device ids may contain `/`, `+` and `#` (IoT Hub allows the latter two); in a topic they would change its meaning. */
export function topicLevelSafe(value: string): string {
  return value.replace(/[/+#%]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}
