import { pino, type DestinationStream, type Logger } from 'pino';
import { redactValue, scrubText } from './redact.js';

export type { Logger } from 'pino';

/** Levels an operator can pick with OUTPOST_LOG_LEVEL. */
export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LoggerOptions {
  level?: LogLevel;
  /** Where lines go; default stdout (journald adds time, unit and priority). Tests pass a capture. */
  destination?: DestinationStream;
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
  const scrubbed: DestinationStream = { write: (line: string) => target.write(scrubText(line)) };
  return pino(
    {
      level: opts.level ?? 'info',
      base: { pid: process.pid },
      // journald stamps each line itself; an ISO time keeps lines readable when stdout is a file.
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: {
        level: (label) => ({ level: label }),
        log: (fields) => redactValue(fields) as Record<string, unknown>,
      },
      serializers: { err: (err: unknown) => redactValue(err) },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((a) => (typeof a === 'string' ? scrubText(a) : a)) as Parameters<typeof method>);
        },
      },
    },
    scrubbed,
  );
}
