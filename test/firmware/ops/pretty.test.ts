import { spawn } from 'node:child_process';
import { once } from 'node:events';
import t from 'tap';
import { createLogger, logFormatFromEnv } from '../../../firmware/log/logger.js';
import { tempDir } from '../../support/tmp.js';
import { bundleGateway } from '../../support/gateway-process.js';

const SAS_KEY = 'c2VjcmV0LWtleS1mb3ItdGVzdHMtMTIzNDU2Nzg5MA==';
/** A child that has not exited by then is broken, not slow. */
const CHILD_WAIT_MS = 30_000;

function capture(): { write(line: string): void; text(): string } {
  const chunks: string[] = [];
  return { write: (line: string) => void chunks.push(line), text: () => chunks.join('') };
}

t.test('pretty lines: time, level, message, fields; the status line marked; secrets still scrubbed', async (t) => {
  const out = capture();
  const logger = createLogger({ destination: out, format: 'pretty' });
  logger.info({ hubPort: 1883, board: 'sim' }, 'outpost ready');
  logger.info({ link: 'up', backlogRecords: 3, bytesOnDisk: 8192 }, 'outpost gw [sim] link=up backlog=3 rec');
  logger.warn({ source: 'uplink' }, `uplink: refused HostName=h;DeviceId=d;SharedAccessKey=${SAS_KEY}`);
  const [ready, status, warning] = out.text().split('\n');
  t.match(ready, /^\d\d:\d\d:\d\d\.\d{3} INFO  outpost ready {2}hubPort=1883 board=sim$/);
  t.match(status, /^\d\d:\d\d:\d\d\.\d{3} ==> outpost gw \[sim\] link=up backlog=3 rec$/, 'the status line stands out');
  t.match(
    warning,
    /^\d\d:\d\d:\d\d\.\d{3} WARN  uplink: refused HostName=h;DeviceId=d;SharedAccessKey=\[redacted\] {2}source=uplink$/,
  );
  t.notOk(out.text().includes(SAS_KEY));
  t.notOk(out.text().includes('{"'), 'no JSON');
  const withError = capture();
  const quiet = createLogger({ destination: withError, format: 'pretty' });
  quiet.warn({ err: new Error('connect ECONNRESET') }, 'uplink: connect ECONNRESET');
  quiet.warn({ err: new Error('socket closed') }, 'uplink: connection lost');
  t.match(
    withError.text(),
    /WARN {2}uplink: connect ECONNRESET\n.*WARN {2}uplink: connection lost {2}\(socket closed\)\n$/,
    'an error message already in the line is not repeated',
  );
  const coloured = capture();
  createLogger({ destination: coloured, format: 'pretty', colour: true }).error('boom');
  t.match(coloured.text(), /\u001b\[31mERROR\u001b\[0m boom/);
});

t.test(
  'the format follows the terminal: pretty on a TTY, JSON for journald and pipes, OUTPOST_LOG_FORMAT wins',
  async (t) => {
    t.same(logFormatFromEnv({}, true), { format: 'pretty', colour: true });
    t.same(logFormatFromEnv({ NO_COLOR: '1' }, true), { format: 'pretty', colour: false });
    t.same(logFormatFromEnv({}, false), { format: 'json', colour: false });
    t.same(logFormatFromEnv({ OUTPOST_LOG_FORMAT: 'json' }, true), { format: 'json', colour: false });
    t.same(logFormatFromEnv({ OUTPOST_LOG_FORMAT: 'pretty' }, false), { format: 'pretty', colour: false });
    t.throws(
      () => logFormatFromEnv({ OUTPOST_LOG_FORMAT: 'xml' }, false),
      /"OUTPOST_LOG_FORMAT" must be json or pretty, got "xml"/,
    );
  },
);

t.test('a warning carries its error without the stack unless the level is debug; errors keep theirs', async (t) => {
  const err = Object.assign(new Error('cannot connect to mqtt://127.0.0.1:1: connect ECONNREFUSED'), {
    code: 'CONNECT',
  });
  const info = capture();
  const atInfo = createLogger({ destination: info });
  atInfo.warn({ source: 'uplink', err }, 'uplink: cannot connect');
  atInfo.error({ err }, 'unexpected');
  const [warnLine, errorLine] = info
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { err: Record<string, unknown> });
  t.same(warnLine!.err, { type: 'Error', message: err.message, code: 'CONNECT' }, 'type, message and code only');
  t.match(errorLine!.err.stack, /at /, 'an error-level line keeps the stack');
  t.ok(info.text().split('\n')[0]!.length < 300, 'the routine warning is a short line');
  const debug = capture();
  createLogger({ destination: debug, level: 'debug' }).warn({ err }, 'uplink: cannot connect');
  t.match((JSON.parse(debug.text()) as { err: { stack: string } }).err.stack, /at /, 'at debug the stack is there');
});

t.test(
  'the bundled gateway on a real terminal (script(1) allocates a pty) prints readable lines, JSON when piped',
  async (t) => {
    const bundle = await bundleGateway(tempDir(t));
    const missing = `${tempDir(t)}/no-board.json`;
    const command = `${process.execPath} ${bundle} run --board ${missing}`;
    const run = async (argv: string[], env: NodeJS.ProcessEnv) => {
      const proc = spawn(argv[0]!, argv.slice(1), {
        env: { ...process.env, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
      const timer = setTimeout(() => proc.kill('SIGKILL'), CHILD_WAIT_MS);
      await once(proc, 'exit');
      clearTimeout(timer);
      return out;
    };
    const tty = await run(['script', '-qec', command, '/dev/null'], { NO_COLOR: '1' });
    t.match(
      tty,
      /\d\d:\d\d:\d\d\.\d{3} FATAL outpost: .*no-board\.json: \$: expected a readable board file, got ENOENT/,
    );
    t.notMatch(tty, /"level"/, 'no JSON on the terminal');
    const piped = await run([process.execPath, bundle, 'run', '--board', missing], {});
    t.match(
      JSON.parse(piped.trim()),
      { level: 'fatal', msg: /expected a readable board file, got ENOENT/ },
      'JSON ' + 'lines when stdout is a pipe',
    );
  },
);
