import { pino, type DestinationStream, type Logger } from 'pino';
import { prettyLine } from './pretty.js';
import { redactValue, scrubText } from './redact.js';

export type { Logger } from 'pino';

/** Levels an operator can pick with OUTPOST_LOG_LEVEL. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default stdout (journald adds time, unit and priority). Tests pass a capture. */
  destination?: DestinationStream;
  /** Readable lines instead of JSON (firmware/ops/pretty.ts). Default: JSON; see `logFormatFromEnv`. */
  format?: LogFormat;
  /** Pretty lines in colour. Default false. */
  colour?: boolean;
}

export type LogFormat = 'json' | 'pretty';

/**
 * OUTPOST_LOG_FORMAT (json or pretty); unset: pretty when stdout is a terminal (`npm start`), JSON otherwise
 * (journald, files, pipes). Colour on a terminal unless NO_COLOR is set.
 */
export function logFormatFromEnv(
  env: NodeJS.ProcessEnv = process.env,
  isTty = process.stdout.isTTY === true,
): { format: LogFormat; colour: boolean } {
  const raw = env.OUTPOST_LOG_FORMAT;
  if (raw !== undefined && raw !== '' && raw !== 'json' && raw !== 'pretty') {
    throw new TypeError(`"OUTPOST_LOG_FORMAT" must be json or pretty, got ${JSON.stringify(raw)}`);
  }
  const format = raw === 'json' || raw === 'pretty' ? raw : isTty ? 'pretty' : 'json';
  return { format, colour: format === 'pretty' && isTty && !env.NO_COLOR };
}

/** Reads OUTPOST_LOG_LEVEL; a wrong value is an operator error named with the variable. */
export function logLevelFromEnv(env: NodeJS.ProcessEnv = process.env): LogLevel {
  const raw = env.OUTPOST_LOG_LEVEL;
  if (raw === undefined || raw === '') return 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(raw)) {
    throw new TypeError(`"OUTPOST_LOG_LEVEL" must be one of ${LOG_LEVELS.join(', ')}, got ${JSON.stringify(raw)}`);
  }
  return raw as LogLevel;
}

/**
 * The process logger: JSON lines (pino) on stdout. Every field is redacted by name and every string scrubbed
 * by pattern (`formatters.log`, the `err` serializer, the message itself), and the finished line is scrubbed
 * once more on its way out, so a secret inside a stack trace or a child logger's bindings cannot slip through.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  // Synchronous writes: a line logged just before a crash or exit must reach the journal.
  const target = opts.destination ?? pino.destination({ dest: 1, sync: true });
  const pretty = opts.format === 'pretty' ? { colour: opts.colour ?? false } : null;
  const scrubbed: DestinationStream = {
    write: (line: string) => target.write(pretty === null ? scrubText(line) : prettyLine(scrubText(line), pretty)),
  };
  const level = opts.level ?? 'info';
  // A routine warning ("cannot connect ...") repeats every backoff: its stack (about 1 KB) only at debug.
  const stacks = level === 'debug' || level === 'trace';
  return pino(
    {
      level,
      base: { pid: process.pid },
      // journald stamps each line itself; an ISO time keeps lines readable when stdout is a file.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => redactValue(fields) as Record<string, unknown>,
      },
      serializers: { err: (err: unknown) => redactValue(err) },
      hooks: {
        logMethod(args, method, levelValue) {
          const kept = stacks || levelValue >= ERROR_LEVEL_VALUE ? args : args.map(withoutStack);
          method.apply(this, kept.map((a) => (typeof a === 'string' ? scrubText(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    scrubbed,
  );
}

/** pino's number for "error": errors and fatal lines keep their stacks at every level. */
const ERROR_LEVEL_VALUE = 50;

/** `{ err }` with the error reduced to its type, message and code. */
function withoutStack(arg: unknown): unknown {
  if (typeof arg !== 'object' || arg === null || !((arg as { err?: unknown }).err instanceof Error)) return arg;
  const err = (arg as { err: Error & { code?: unknown } }).err;
  return {
    ...arg,
    err: { type: err.name, message: err.message, ...(err.code === undefined ? {} : { code: err.code }) },
  };
}
