import type { ConfigNode } from './node.js';
import { BOARD_OPTIONS } from './schema-board.js';
import { HUB_OPTIONS } from './schema-hub.js';
import { UPLINK_OPTIONS } from './schema-uplink.js';

/**
 * Every option of board.json's sections, declared once as data. The validators take their lists of known
 * fields and their integer ranges from this table, `outpost board reference` renders it as the reference
 * (firmware/config/REFERENCE.md), and a test sets each option to its example and to a wrong value through
 * the real loader; so an option cannot be accepted, documented or validated without the other two.
 */
export interface OptionSpec {
  /** Dotted path from the top of board.json: "uplink.keepaliveSecs"; "<name>" stands for any key. */
  path: string;
  /** How the value is written, for people: "integer", "file path", "list of strings", ... */
  type: string;
  /** Integers whose range does not depend on other fields: the validator uses exactly these. */
  int?: { min: number; max: number; default?: number };
  /** Default as shown in the reference; derived from `int.default` when absent. "required" if none. */
  default?: string;
  unit?: string;
  /** Allowed values, for people; derived from `int` when absent. */
  range?: string;
  /** A valid value (the test loads a board with it). */
  example: unknown;
  /** A value the validator must refuse, naming this option. */
  invalid: unknown;
  /** Sibling fields the example needs (or `null` to remove one), e.g. keyFile beside certFile. */
  with?: Record<string, unknown>;
  /** uplink only: the protocols that accept the field (every one when absent). */
  protocols?: readonly UplinkProtocol[];
  doc: string;
}

export type UplinkProtocol = 'mqtt' | 'azure' | 'sim';

/** The sections of board.json the table covers, in reference order. */
export const OPTION_SECTIONS = ['identity', 'storage', 'metrics', 'ota', 'page', 'uplink', 'hub', 'routes'] as const;

export const OPTIONS: readonly OptionSpec[] = [...BOARD_OPTIONS, ...UPLINK_OPTIONS, ...HUB_OPTIONS];

const BY_PATH = new Map(OPTIONS.map((spec) => [spec.path, spec]));

export function optionSpec(path: string): OptionSpec {
  const spec = BY_PATH.get(path);
  if (spec === undefined) throw new Error(`no option ${path} in the schema table`);
  return spec;
}

/** The field names directly under `section` ("uplink", "hub.tls"), those of one uplink protocol if given. */
export function fieldsOf(section: string, protocol?: UplinkProtocol): string[] {
  const prefix = `${section}.`;
  const names = new Set<string>();
  for (const spec of OPTIONS) {
    if (!spec.path.startsWith(prefix)) continue;
    if (protocol !== undefined && spec.protocols !== undefined && !spec.protocols.includes(protocol)) continue;
    names.add(spec.path.slice(prefix.length).split('.')[0]!);
  }
  return [...names];
}

/** The integer at `node`, validated by the table's range for `path` (a missing field takes the default). */
export function integerOption(node: ConfigNode, path: string): number {
  const spec = optionSpec(path);
  if (spec.int === undefined) throw new Error(`option ${path} has no integer range in the schema table`);
  return node.integer({ ...spec.int, unit: spec.unit });
}

/** Like integerOption, but a missing field stays undefined (the module it is passed to has the default). */
export function optionalIntegerOption(node: ConfigNode, path: string): number | undefined {
  return node.missing ? undefined : integerOption(node, path);
}
