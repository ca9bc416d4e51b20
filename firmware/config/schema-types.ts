/** One board.json option as the schema table (schema.ts) declares it; the section tables import only this. */
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
