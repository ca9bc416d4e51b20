import { ConfigError, describeValue } from './errors.js';

/** Tells which file set the value at a JSON path once variant, base and board.json are merged; undefined
 * for a path no file set (a missing field), which then takes its parent's file. */
export type OriginLookup = (jsonPath: string) => string | undefined;

/** The key of a comment inside a board file (see `keys`). */
export const COMMENT_KEY = '$comment';

const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;

/** `$.devices.env0` for plain keys, `$.buses["i2c-1"]` for keys that are not identifiers. */
export function childPath(parent: string, key: string | number): string {
  if (typeof key === 'number') return `${parent}[${key}]`;
  return IDENTIFIER.test(key) ? `${parent}.${key}` : `${parent}[${JSON.stringify(key)}]`;
}

interface IntegerRule {
  min: number;
  max: number;
  /** Unit shown in the error, e.g. "bytes", "ms". */
  unit?: string;
  default?: number;
}

/**
 * A value inside a board file together with where it lives. Every accessor either returns a typed value or
 * throws a ConfigError naming the file, the JSON path and the expectation; there is no "maybe valid" result.
 */
export class ConfigNode {
  constructor(
    readonly value: unknown,
    readonly path: string,
    private readonly origin: OriginLookup,
    private readonly parent?: ConfigNode,
  ) {}

  /** The file an operator must edit to change this value. */
  get file(): string {
    return this.origin(this.path) ?? this.parent?.file ?? '(unknown file)';
  }

  get missing(): boolean {
    return this.value === undefined;
  }

  fail(expected: string): never {
    throw new ConfigError('INVALID', { file: this.file, jsonPath: this.path }, expected, describeValue(this.value));
  }

  field(key: string): ConfigNode {
    const record = this.record();
    return new ConfigNode(record[key], childPath(this.path, key), this.origin, this);
  }

  /**
   * The object's own keys, after checking that each is one the schema knows (catches typos like
   * "segmentByte"). A "$comment" key (JSON Schema's convention) is allowed in every object and skipped: JSON
   * has no comments, and annotated boards (boards/examples/) need them.
   */
  keys(allowed?: readonly string[]): string[] {
    const keys = Object.keys(this.record()).filter((key) => key !== COMMENT_KEY);
    if (allowed) {
      for (const key of keys) {
        if (!allowed.includes(key)) {
          new ConfigNode(key, childPath(this.path, key), this.origin, this).fail(
            `one of the known fields ${allowed.join(', ')}`,
          );
        }
      }
    }
    return keys;
  }

  record(): Record<string, unknown> {
    if (typeof this.value !== 'object' || this.value === null || Array.isArray(this.value)) this.fail('an object');
    return this.value as Record<string, unknown>;
  }

  /** The elements of an array holding between `min` and `max` items. */
  items(expected: string, min: number, max: number): ConfigNode[] {
    const value = this.value;
    if (!Array.isArray(value) || value.length < min || value.length > max) this.fail(expected);
    return value.map((item, index) => new ConfigNode(item, childPath(this.path, index), this.origin, this));
  }

  /** An object that may be absent (treated as empty). */
  optionalRecord(): Record<string, unknown> {
    return this.missing ? {} : this.record();
  }

  string(opts: { default?: string; pattern?: RegExp; describe?: string } = {}): string {
    if (this.missing && opts.default !== undefined) return opts.default;
    const what = opts.describe ?? 'a non-empty string';
    if (typeof this.value !== 'string' || this.value.length === 0) this.fail(what);
    if (opts.pattern && !opts.pattern.test(this.value)) this.fail(what);
    return this.value;
  }

  optionalString(): string | undefined {
    return this.missing ? undefined : this.string();
  }

  /** A missing field takes the default, which must itself satisfy the rule (a quota default below 4 segments
   * is reported against the missing field, telling the operator to set it). */
  integer(rule: IntegerRule): number {
    const unit = rule.unit ? ` (${rule.unit})` : '';
    const value = this.missing ? rule.default : this.value;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < rule.min || value > rule.max) {
      this.fail(`an integer between ${rule.min} and ${rule.max}${unit}`);
    }
    return value;
  }

  boolean(opts: { default?: boolean } = {}): boolean {
    if (this.missing && opts.default !== undefined) return opts.default;
    if (typeof this.value !== 'boolean') this.fail('true or false');
    return this.value;
  }

  oneOf<T extends string>(choices: readonly T[], opts: { default?: T } = {}): T {
    if (this.missing && opts.default !== undefined) return opts.default;
    if (typeof this.value !== 'string' || !(choices as readonly string[]).includes(this.value)) {
      this.fail(`one of ${choices.map((c) => JSON.stringify(c)).join(', ')}`);
    }
    return this.value as T;
  }
}
