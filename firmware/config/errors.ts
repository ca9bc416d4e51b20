/**
 * The one error type an operator sees for a bad board file. Its message always names the file, the JSON path
 * inside it and what was expected, so a typo on a headless gateway can be fixed from the journal alone:
 *
 *   board.json: $.storage.segmentBytes: expected an integer between 1048576 and 1073741824 (bytes), got 12
 */
export class ConfigError extends Error {
  /** UNREADABLE: the file is missing or not JSON. INVALID: the JSON does not match the schema. */
  readonly code: 'UNREADABLE' | 'INVALID';
  readonly file: string;
  readonly jsonPath: string;
  readonly expected: string;

  constructor(
    code: 'UNREADABLE' | 'INVALID',
    where: { file: string; jsonPath: string },
    expected: string,
    got: string,
    options?: { cause?: unknown },
  ) {
    super(`${where.file}: ${where.jsonPath}: expected ${expected}, got ${got}`, options);
    this.name = 'ConfigError';
    this.code = code;
    this.file = where.file;
    this.jsonPath = where.jsonPath;
    this.expected = expected;
  }
}

/** Short, single-line rendering of an offending value for error messages. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (the field is missing)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  const DESCRIBE_CHARS_MAX = 60;
  return text.length > DESCRIBE_CHARS_MAX ? `${text.slice(0, DESCRIBE_CHARS_MAX)}…` : text;
}
