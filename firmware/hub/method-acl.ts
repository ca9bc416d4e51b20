// config.ts imports this file's parser; the class is only used once a board is parsed, so the cycle is harmless.
import { HubConfigError } from './config.js';

/**
 * Who may call which direct method on whom, child to child. Default deny: a child may call a method on
 * another child (or on itself) only when board.json allows it:
 *
 * ```json
 * "hub": { "methods": { "allow": {
 *   "panel": ["pump-1/start", "pump-1/stop"], "*": ["logger/*"], "edge/filter": ["cam/m1/*"]
 * } } }
 * ```
 *
 * Keys are callers, values the `<target>/<method>` pairs they may call; a target is a device id or
 * `<deviceId>/<moduleId>`, a caller too. `*` matches any run of characters within one id or name (never a
 * `/`), so the caller `*` is every device and `<d>/*` every module of device d. The cloud (through the gateway
 * method `outpost.invokeChild`) and the gateway itself are not children and are not subject to this list.
 */

/** Rules one board may declare; each call is checked against all of them. */
export const METHOD_ALLOW_RULES_MAX = 256;
/** IoT Hub's bound on a device or module id, and on a method name, characters. */
const SEGMENT_CHARS_MAX = 128;

export interface MethodAllowRule {
  caller: string;
  target: string;
  method: string;
}

const SEGMENT = new RegExp(`^[^/\\s]{1,${SEGMENT_CHARS_MAX}}$`);

/** An id of one or two segments (device, or device/module). */
function validId(text: string): boolean {
  const parts = text.split('/');
  return parts.length <= 2 && parts.every((p) => SEGMENT.test(p));
}

export function parseMethodAllow(value: unknown, file: string): MethodAllowRule[] {
  if (value === undefined) return [];
  const at = 'hub.methods';
  const bad = (message: string) => new HubConfigError(`${file}: ${message}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`${at} must be an object`);
  const section = value as Record<string, unknown>;
  for (const key of Object.keys(section)) if (key !== 'allow') throw bad(`${at}.${key} is not a known option`);
  const allow = section.allow ?? {};
  if (typeof allow !== 'object' || allow === null || Array.isArray(allow)) {
    throw bad(`${at}.allow must be an object of caller → ["<target>/<method>", ...]`);
  }
  const rules: MethodAllowRule[] = [];
  for (const [caller, targets] of Object.entries(allow)) {
    const where = `${at}.allow[${JSON.stringify(caller)}]`;
    if (!validId(caller)) throw bad(`${where}: the caller must be a device id or "<deviceId>/<moduleId>"`);
    if (!Array.isArray(targets)) throw bad(`${where} must be an array of "<target>/<method>"`);
    targets.forEach((entry: unknown, i) => {
      const slash = typeof entry === 'string' ? entry.lastIndexOf('/') : -1;
      const target = slash > 0 ? (entry as string).slice(0, slash) : '';
      const method = slash > 0 ? (entry as string).slice(slash + 1) : '';
      if (!validId(target) || !SEGMENT.test(method)) {
        const what = '"<target>/<method>" (target a device id or "<deviceId>/<moduleId>")';
        throw bad(`${where}[${i}] must be ${what}, got ${JSON.stringify(entry)}`);
      }
      rules.push({ caller, target, method });
    });
    if (rules.length > METHOD_ALLOW_RULES_MAX) throw bad(`${at}.allow has more than ${METHOD_ALLOW_RULES_MAX} rules`);
  }
  return rules;
}

function compile(pattern: string): RegExp {
  const body = pattern.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('[^/]*');
  return new RegExp(`^${body}$`);
}

export class MethodAcl {
  private readonly rules: Array<{ caller: RegExp; target: RegExp; method: RegExp }>;

  constructor(rules: MethodAllowRule[]) {
    this.rules = rules.map((r) => ({
      caller: compile(r.caller), target: compile(r.target), method: compile(r.method),
    }));
  }

  allows(caller: string, target: string, method: string): boolean {
    return this.rules.some((r) => r.caller.test(caller) && r.target.test(target) && r.method.test(method));
  }
}
