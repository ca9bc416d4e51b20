import { resolve } from 'node:path';
import { loadBoard, runBoardCheckCli, type LoadedBoard } from './config/index.js';
import { runLogCli } from './store/cli.js';
import { Runtime, STATUS_INTERVAL_MS, formatStatus } from './runtime.js';

const USAGE = `usage: outpost [run] [--board FILE]
       outpost log <stat|verify|dump> [--dir DATA_DIR] ...
       outpost board check [FILE ...]
The active board is ./board.json (or OUTPOST_BOARD); OUTPOST_DATA_DIR overrides its storage.dataDir and
OUTPOST_HUB_PORT the local hub's TCP port (0 = any free port).`;
/** A graceful stop that takes longer than this is cut short: systemd would SIGKILL us anyway. */
const STOP_TIMEOUT_MS = 10_000;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

async function board(args: string[]): Promise<LoadedBoard> {
  return loadBoard(resolve(flag(args, '--board') ?? process.env.OUTPOST_BOARD ?? 'board.json'));
}

/** Resolves on the first SIGINT/SIGTERM. Installed before start-up so a signal during start is not fatal. */
function stopSignal(): Promise<string> {
  return new Promise((done) => {
    let stopping = false;
    // A second signal while stopping must not kill the flush half-way: STOP_TIMEOUT_MS bounds the stop.
    const onSignal = (signal: string) => {
      process.stdout.write(stopping ? `outpost: ${signal}, already stopping\n` : `outpost: ${signal}, stopping\n`);
      stopping = true;
      done(signal);
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
  });
}

async function run(args: string[]): Promise<number> {
  const stopped = stopSignal();
  const loaded = await board(args);
  const hubPort = process.env.OUTPOST_HUB_PORT;
  const runtime = new Runtime(loaded, {
    dataDir: process.env.OUTPOST_DATA_DIR ? resolve(process.env.OUTPOST_DATA_DIR) : undefined,
    hubPort: hubPort === undefined ? undefined : Number(hubPort),
  });
  await runtime.start();
  process.on('SIGUSR2', () => runtime.wake('SIGUSR2'));
  process.stdout.write(`outpost ready: board ${loaded.variant} (${loaded.variantFile}), data in ${runtime.dataDir}\n`);
  const timer = setInterval(() => process.stdout.write(`${formatStatus(runtime.status())}\n`), STATUS_INTERVAL_MS);
  await stopped;
  clearInterval(timer);
  const forced = setTimeout(() => {
    process.stderr.write(`outpost: stop took longer than ${STOP_TIMEOUT_MS} ms, exiting\n`);
    process.exit(1);
  }, STOP_TIMEOUT_MS).unref();
  const final = runtime.status();
  await runtime.stop();
  clearTimeout(forced);
  process.stdout.write(`${formatStatus(final)}\noutpost stopped\n`);
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command = 'run', ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest);
    case 'log': {
      const dataDir = flag(rest, '--dir') ?? process.env.OUTPOST_DATA_DIR ?? (await board(rest)).storage.dataDir;
      return runLogCli(rest, resolve(dataDir));
    }
    case 'board':
      if (rest[0] === 'check') return runBoardCheckCli(rest.slice(1));
      process.stderr.write(`${USAGE}\n`);
      return 2;
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`outpost: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
