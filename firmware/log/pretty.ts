/**
 * Readable log lines for a person at a terminal (`npm start`), from the JSON lines pino writes; journald and
 * files keep the JSON. The status line (the one carrying `backlogRecords`) is marked so it stands out.
 *
 *   21:52:03.120 INFO  outpost ready: board sim (...)  hubPort=1883 statusSocket=/.../outpost.sock
 *   21:52:08.121 ==> outpost outpost-sim [sim] link=up backlog=0 rec/0 B ...
 */

const LEVEL_NAMES: Record<string, string> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO ',
  warn: 'WARN ',
  error: 'ERROR',
  fatal: 'FATAL',
};
/** ANSI SGR colours per level; none when NO_COLOR is set (no-color.org). */
const LEVEL_COLOURS: Record<string, string> = {
  trace: '90',
  debug: '90',
  info: '32',
  warn: '33',
  error: '31',
  fatal: '41;97',
};
const STATUS_COLOUR = '1;36';
/** Fields every line has, shown by the prefix rather than as key=value. */
const PREFIX_FIELDS = new Set(['level', 'time', 'pid', 'msg', 'hostname']);
/** A field value longer than this is cut: a terminal line stays one screen line or two. */
const FIELD_CHARS_MAX = 200;

export interface PrettyOptions {
  colour: boolean;
}

/** One JSON log line in, one readable line out (a line that is not JSON is passed on as it is). */
export function prettyLine(json: string, opts: PrettyOptions): string {
  let line: Record<string, unknown>;
  try {
    line = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const paint = (sgr: string, text: string) => (opts.colour ? `\u001b[${sgr}m${text}\u001b[0m` : text);
  const level = String(line['level'] ?? 'info');
  const time = typeof line['time'] === 'string' ? line['time'].slice(11, 23) : '';
  const msg = String(line['msg'] ?? '');
  if ('backlogRecords' in line) return `${time} ${paint(STATUS_COLOUR, `==> ${msg}`)}\n`;
  const fields = Object.entries(line)
    .filter(([key]) => !PREFIX_FIELDS.has(key) && key !== 'err')
    .map(([key, value]) => `${key}=${shorten(typeof value === 'string' ? value : JSON.stringify(value))}`);
  const head = `${time} ${paint(LEVEL_COLOURS[level] ?? '0', LEVEL_NAMES[level] ?? level.toUpperCase())} ${msg}`;
  const tail = fields.length > 0 ? `  ${paint('90', fields.join(' '))}` : '';
  return `${head}${tail}${errorText(line['err'], msg)}\n`;
}

function shorten(text: string): string {
  return text.length > FIELD_CHARS_MAX ? `${text.slice(0, FIELD_CHARS_MAX)}...` : text;
}

/** The stack when the logger kept one (debug level), else the message when it is not in `msg` already. */
function errorText(err: unknown, msg: string): string {
  if (typeof err !== 'object' || err === null) return '';
  const { stack, message } = err as { stack?: unknown; message?: unknown };
  if (typeof stack === 'string') return `\n    ${stack.split('\n').join('\n    ')}`;
  return typeof message === 'string' && !msg.includes(message) ? `  (${message})` : '';
}
