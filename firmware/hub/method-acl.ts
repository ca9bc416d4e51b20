import type { ConfigNode } from '../config/node.js';

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

/** Parses `hub.methods`; errors name the file and the JSON path of the offending entry. */
export function parseMethodAllow(node: ConfigNode): MethodAllowRule[] {
  if (node.missing) return [];
  node.record();
  node.keys(['allow']);
  const allow = node.field('allow');
  if (allow.missing) return [];
  allow.record();
  const rules: MethodAllowRule[] = [];
  for (const caller of allow.keys()) {
    const targets = allow.field(caller);
    if (!validId(caller)) targets.fail('a caller that is a device id or "<deviceId>/<moduleId>"');
    for (const item of targets.items('a list of "<target>/<method>"', 0, METHOD_ALLOW_RULES_MAX)) {
      const entry = item.string({ describe: '"<target>/<method>"' });
      const slash = entry.lastIndexOf('/');
      const target = slash > 0 ? entry.slice(0, slash) : '';
      const method = slash > 0 ? entry.slice(slash + 1) : '';
      if (!validId(target) || !SEGMENT.test(method)) {
        item.fail('"<target>/<method>" (target a device id or "<deviceId>/<moduleId>")');
      }
      rules.push({ caller, target, method });
    }
  }
  if (rules.length > METHOD_ALLOW_RULES_MAX) allow.fail(`at most ${METHOD_ALLOW_RULES_MAX} rules in all`);
  return rules;
}

function compile(pattern: string): RegExp {
  const body = pattern
    .split('*')
    .map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
    .join('[^/]*');
  return new RegExp(`^${body}$`);
}

export class MethodAcl {
  private readonly rules: Array<{ caller: RegExp; target: RegExp; method: RegExp }>;

  constructor(rules: MethodAllowRule[]) {
    this.rules = rules.map((r) => ({
      caller: compile(r.caller),
      target: compile(r.target),
      method: compile(r.method),
    }));
  }

  allows(caller: string, target: string, method: string): boolean {
    return this.rules.some((r) => r.caller.test(caller) && r.target.test(target) && r.method.test(method));
  }
}
