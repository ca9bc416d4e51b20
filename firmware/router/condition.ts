/**
 * The WHERE clause of a route: a subset of IoT Hub's routing query language.
 *
 *   condition := or;  or := and ('OR' and)*;  and := not ('AND' not)*;  not := 'NOT' not | primary
 *   primary   := '(' condition ')' | 'IS_DEFINED' '(' ref ')' | operand op operand
 *   op        := '=' | '!=' | '<>' | '<' | '<=' | '>' | '>='
 *   operand   := ref | 'string' | number | true | false
 *   ref       := name (an application property) | $deviceId | $moduleId | $contentType | $contentEncoding | $body.a.b
 *
 * `$deviceId` (alias `$connectionDeviceId`) is the sending device; for a module, the device it belongs to, as
 * in IoT Hub, with `$moduleId` (alias `$connectionModuleId`) naming the module (undefined for a device).
 *
 * Application properties are strings; compared with a number they are read as numbers when they are numeric
 * (IoT Hub would call that a type mismatch and never match, which makes `temp > 30` useless on MQTT devices).
 * `$body` works on JSON bodies only (content type application/json), as in IoT Hub.
 */

export type Value = string | number | boolean | null | undefined;
export type Operand = { ref: string[] } | { literal: Value };
export type Condition =
  | { op: 'and' | 'or'; left: Condition; right: Condition }
  | { op: 'not'; inner: Condition }
  | { op: 'defined'; ref: string[] }
  | { op: '=' | '!=' | '<' | '<=' | '>' | '>='; left: Operand; right: Operand };

export interface RoutedMessage {
  /** Connection id of the sender: a device id or `<deviceId>/<moduleId>`. */
  deviceId: string;
  properties: Record<string, string>;
  contentType: string;
  contentEncoding: string;
  body: Buffer;
}

/** Conditions nested deeper than this are refused at parse time; evaluation recursion is bounded by it. */
export const CONDITION_DEPTH_MAX = 16;
/** Longest WHERE clause, characters. */
export const CONDITION_CHARS_MAX = 1_024;
/** Bodies larger than this are not parsed for `$body` conditions, bytes (the hub's message limit). */
const BODY_JSON_BYTES_MAX = 256 * 1024;

export class RouteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RouteError';
  }
}

/** Evaluates lazily: the body is parsed at most once per message, and only when a condition asks for it. */
export function evaluate(condition: Condition, message: RoutedMessage): boolean {
  let body: { parsed: unknown } | null = null;
  const bodyValue = (): unknown => {
    if (body !== null) return body.parsed;
    body = { parsed: undefined };
    const json = message.contentType.toLowerCase().startsWith('application/json');
    if (json && message.body.length <= BODY_JSON_BYTES_MAX) {
      try {
        body.parsed = JSON.parse(message.body.toString('utf8'));
      } catch {
        body.parsed = undefined;
      }
    }
    return body.parsed;
  };
  const resolve = (ref: string[]): Value => {
    const [head, ...rest] = ref;
    if (head === '$deviceId') return message.deviceId.split('/')[0];
    if (head === '$moduleId') return message.deviceId.split('/')[1];
    if (head === '$contentType') return message.contentType;
    if (head === '$contentEncoding') return message.contentEncoding;
    if (head === '$body') {
      let node = bodyValue();
      for (const key of rest) {
        if (typeof node !== 'object' || node === null || !Object.hasOwn(node, key)) return undefined;
        node = (node as Record<string, unknown>)[key];
      }
      return typeof node === 'object' ? undefined : (node as Value);
    }
    return Object.hasOwn(message.properties, head) ? message.properties[head] : undefined;
  };
  const value = (operand: Operand): Value => ('literal' in operand ? operand.literal : resolve(operand.ref));
  const walk = (c: Condition): boolean => {
    switch (c.op) {
      case 'and':
        return walk(c.left) && walk(c.right);
      case 'or':
        return walk(c.left) || walk(c.right);
      case 'not':
        return !walk(c.inner);
      case 'defined':
        return resolve(c.ref) !== undefined;
      default:
        return compare(c.op, value(c.left), value(c.right));
    }
  };
  return walk(condition);
}

function compare(op: '=' | '!=' | '<' | '<=' | '>' | '>=', a: Value, b: Value): boolean {
  if (a === undefined || b === undefined) return false;
  let left = a;
  let right = b;
  if (typeof left === 'number' && typeof right === 'string' && right.trim() !== '' && Number.isFinite(Number(right)))
    right = Number(right);
  if (typeof right === 'number' && typeof left === 'string' && left.trim() !== '' && Number.isFinite(Number(left)))
    left = Number(left);
  if (op === '=') return left === right;
  if (op === '!=') return left !== right;
  if (typeof left !== typeof right || (typeof left !== 'number' && typeof left !== 'string')) return false;
  const l = left as number | string;
  const r = right as number | string;
  return op === '<' ? l < r : op === '<=' ? l <= r : op === '>' ? l > r : l >= r;
}
