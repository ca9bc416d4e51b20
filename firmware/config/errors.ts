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

/**
 * Several problems found in one pass over a board (each section is checked even when another failed), so an
 * operator fixes them all in one edit instead of one restart per mistake. It is a ConfigError itself (the
 * first problem's file and path); its message has one line per problem.
 */
export class ConfigErrors extends ConfigError {
  readonly errors: readonly ConfigError[];

  constructor(errors: readonly ConfigError[]) {
    const first = errors[0]!;
    super(first.code, first, first.expected, '');
    this.name = 'ConfigErrors';
    this.message = errors.map((error) => error.message).join('\n');
    this.errors = errors;
  }
}

/** Runs one section's validation, keeping its ConfigError in `errors` instead of stopping the pass. */
export function collect<T>(errors: ConfigError[], validate: () => T): T | undefined {
  try {
    return validate();
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    errors.push(...(error instanceof ConfigErrors ? error.errors : [error]));
    return undefined;
  }
}

export async function collectAsync<T>(errors: ConfigError[], validate: () => Promise<T>): Promise<T | undefined> {
  try {
    return await validate();
  } catch (error) {
    return collect(errors, () => {
      throw error;
    });
  }
}

/** Throws what `collect` gathered: nothing, the one error, or all of them. */
export function throwCollected(errors: readonly ConfigError[]): void {
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new ConfigErrors(errors);
}
