/**
 * The IoT Hub device MQTT dialect (https://learn.microsoft.com/azure/iot/iot-mqtt-connect-to-iot-hub) plus
 * outpost's one addition for child-to-child methods, and the ACL: a device publishes and subscribes only on
 * its own topics. `$iothub/...` topics carry no device id; they belong to whoever is connected.
 *
 * Every function takes the connection id: a device id, or `<deviceId>/<moduleId>` for a module (IoT Edge's
 * dialect), whose telemetry is `devices/{d}/modules/{m}/messages/events/{props}`, whose downstream messages
 * arrive on `devices/{d}/modules/{m}/inputs/{input}/{props}`, and whose `$iothub/twin` and `$iothub/methods`
 * topics are its module twin and module methods.
 */

import { splitConnectionId } from '../auth/identity.js';
import { IO_NAME } from '../device-id.js';
import { isReservedPropertyName } from '../uplink/message.js';

export type Inbound =
  /** outputName: `$.on`, the module output a message was sent to (ModuleClient.sendOutputEvent); '' for none. */
  /** reservedDropped: application properties with a reserved name (see isReservedName) the hub left out. */
  | {
      kind: 'telemetry';
      properties: Record<string, string>;
      contentType: string;
      contentEncoding: string;
      outputName: string;
      reservedDropped: number;
    }
  | { kind: 'twin-get'; rid: string }
  | { kind: 'twin-reported'; rid: string }
  | { kind: 'method-response'; rid: string; status: number }
  /** `$outpost/methods/POST/<targetId>/<method>/?$rid=<rid>`: call a method on another child (targetId may be `<d>/<m>`). */
  | { kind: 'method-call'; rid: string; targetId: string; method: string };

/** Application properties one message may carry; IoT Hub allows 81 system + application together. */
export const PROPERTIES_MAX = 64;
/** `$rid` is an opaque request id echoed back; a bound keeps responses small. */
const RID_CHARS_MAX = 64;
const METHOD_NAME_PATTERN = /^[A-Za-z0-9_.-]{1,128}$/;

/** The topic prefix a connection's own device-scoped topics start with. */
function ownPrefix(connectionId: string): string {
  const id = splitConnectionId(connectionId);
  return id === null || id.moduleId === null
    ? `devices/${connectionId}`
    : `devices/${id.deviceId}/modules/${id.moduleId}`;
}

/** System properties IoT Hub devices may set in the bag, mapped to outpost's application properties. */
const SYSTEM_PROPERTY_NAMES: Record<string, string> = { '$.mid': 'child-message-id', '$.cid': 'correlation-id' };
/**
 * System properties the azure-iot-device SDK sets from a Message ($.uid, $.to, $.exp, $.ifid, $.sub) that the
 * hub does not carry upstream: IoT Hub sets them itself for what the gateway sends. Dropped, and not a forgery.
 */
const SDK_SYSTEM_PROPERTIES = new Set(['$.uid', '$.to', '$.exp', '$.ifid', '$.sub']);

/** Names a child may not set: the ones no upstream message carries from a producer (firmware/uplink/message.ts). */
export const isReservedName = isReservedPropertyName;

function query(text: string): URLSearchParams | null {
  try {
    return new URLSearchParams(text);
  } catch {
    return null;
  }
}

function ridOf(queryText: string): string | null {
  const rid = query(queryText)?.get('$rid') ?? null;
  return rid !== null && rid.length > 0 && rid.length <= RID_CHARS_MAX && /^[\x21-\x7e]+$/.test(rid) ? rid : null;
}

/** The property bag after `messages/events/`: URL-encoded `k=v&k2=v2`; null when malformed. */
export function parsePropertyBag(bag: string): Omit<Extract<Inbound, { kind: 'telemetry' }>, 'kind'> | null {
  const properties: Record<string, string> = {};
  let contentType = '';
  let contentEncoding = '';
  let outputName = '';
  let count = 0;
  let reservedDropped = 0;
  // sendOutputEvent ends the bag with '/' (azure-iot-device-mqtt), as IoT Hub and edgeHub accept; a '/' in a
  // key or value would be percent-encoded, so a bare one at the end is only a separator.
  const text = bag.endsWith('/') ? bag.slice(0, -1) : bag;
  for (const part of text.split('&')) {
    if (part === '') continue;
    const eq = part.indexOf('=');
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent((eq < 0 ? part : part.slice(0, eq)).replace(/\+/g, ' '));
      value = eq < 0 ? '' : decodeURIComponent(part.slice(eq + 1).replace(/\+/g, ' '));
    } catch {
      return null;
    }
    if (key.length === 0 || key.length > 255 || (count += 1) > PROPERTIES_MAX) return null;
    if (key === '$.ct') contentType = value;
    else if (key === '$.ce') contentEncoding = value;
    else if (key === '$.on') {
      if (!IO_NAME.test(value)) return null;
      outputName = value;
    } else if (key in SYSTEM_PROPERTY_NAMES) properties[SYSTEM_PROPERTY_NAMES[key]] = value;
    else if (SDK_SYSTEM_PROPERTIES.has(key)) continue;
    else if (isReservedName(key)) reservedDropped += 1;
    else properties[key] = value;
  }
  return { properties, contentType, contentEncoding, outputName, reservedDropped };
}

/** Classifies a child's PUBLISH; null means not allowed for this device (ACL) or malformed. */
export function classifyPublish(deviceId: string, topic: string): Inbound | null {
  const events = `${ownPrefix(deviceId)}/messages/events`;
  if (topic === events || topic.startsWith(`${events}/`)) {
    const bag = parsePropertyBag(topic.slice(events.length + 1));
    return bag === null ? null : { kind: 'telemetry', ...bag };
  }
  const q = topic.indexOf('?');
  const path = q < 0 ? topic : topic.slice(0, q);
  const rid = ridOf(q < 0 ? '' : topic.slice(q + 1));
  if (rid === null) return null;
  if (path === '$iothub/twin/GET/') return { kind: 'twin-get', rid };
  if (path === '$iothub/twin/PATCH/properties/reported/') return { kind: 'twin-reported', rid };
  const res = /^\$iothub\/methods\/res\/(\d{3})\/$/.exec(path);
  if (res !== null) return { kind: 'method-response', rid, status: Number(res[1]) };
  const call = /^\$outpost\/methods\/POST\/([^/]+(?:\/[^/]+)?)\/([^/]+)\/$/.exec(path);
  if (call !== null && splitConnectionId(call[1]) !== null && METHOD_NAME_PATTERN.test(call[2])) {
    return { kind: 'method-call', rid, targetId: call[1], method: call[2] };
  }
  return null;
}

/** Filters a child may subscribe to: its own downstream topics only, never another device's. */
export function subscriptionAllowed(deviceId: string, filter: string): boolean {
  const own = [
    DEVICEBOUND_SUBSCRIPTION(deviceId),
    '$iothub/twin/res/#',
    '$iothub/twin/PATCH/properties/desired/#',
    '$iothub/methods/POST/#',
    '$outpost/methods/res/#',
  ];
  return own.includes(filter);
}

export const topic = {
  twinResponse: (status: number, rid: string, version?: number) =>
    `$iothub/twin/res/${status}/?$rid=${rid}${version === undefined ? '' : `&$version=${version}`}`,
  desiredPatch: (version: number) => `$iothub/twin/PATCH/properties/desired/?$version=${version}`,
  methodRequest: (method: string, rid: string) => `$iothub/methods/POST/${method}/?$rid=${rid}`,
  methodCallResult: (status: number, rid: string) => `$outpost/methods/res/${status}/?$rid=${rid}`,
  /**
   * Cloud-to-device and local endpoint messages. A device gets them on its devicebound topic, the bag saying
   * which input a local message is for; a module (which has no cloud-to-device) on its inputs topic.
   */
  deviceBound: (deviceId: string, properties: Record<string, string>, input = '') => {
    const bag = Object.entries(properties)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join('&');
    const id = splitConnectionId(deviceId);
    if (id !== null && id.moduleId !== null) return `${ownPrefix(deviceId)}/inputs/${input}/${bag}`;
    return `devices/${deviceId}/messages/devicebound/${bag}`;
  },
};

export const METHOD_SUBSCRIPTION = '$iothub/methods/POST/#';
/** What a connection subscribes to for its downstream messages: devicebound for devices, inputs for modules. */
export const DEVICEBOUND_SUBSCRIPTION = (deviceId: string) =>
  splitConnectionId(deviceId)?.moduleId
    ? `${ownPrefix(deviceId)}/inputs/#`
    : `devices/${deviceId}/messages/devicebound/#`;
export const DESIRED_SUBSCRIPTION = '$iothub/twin/PATCH/properties/desired/#';
