import { resolve } from 'node:path';
import { runLogCli } from './store/cli.js';
import { Runtime, STATUS_INTERVAL_MS, formatStatus, type RuntimeConfig } from './runtime.js';

const USAGE = `usage: outpost [run] | outpost log <stat|verify|dump> ...`;
/** A graceful stop that takes longer than this is cut short: systemd would SIGKILL us anyway. */
const STOP_TIMEOUT_MS = 10_000;

function defaultConfig(): RuntimeConfig {
  return {
    variant: 'sim',
    gatewayId: 'outpost-sim',
    storage: { dir: resolve(process.env.OUTPOST_DATA_DIR ?? 'data') },
  };
}

async function run(config: RuntimeConfig): Promise<number> {
  const runtime = new Runtime(config);
  await runtime.start();
  process.stdout.write(`outpost ready: board ${config.variant}, data in ${config.storage.dir}\n`);
  const printStatus = () => process.stdout.write(`${formatStatus(runtime.status())}\n`);
  printStatus();
  const timer = setInterval(printStatus, STATUS_INTERVAL_MS);
  await new Promise<void>((done) => {
    const stop = (signal: string) => {
      process.stdout.write(`outpost: ${signal}, stopping\n`);
      done();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  clearInterval(timer);
  const forced = setTimeout(() => {
    process.stderr.write(`outpost: stop took longer than ${STOP_TIMEOUT_MS} ms, exiting\n`);
    process.exit(1);
  }, STOP_TIMEOUT_MS).unref();
  await runtime.stop();
  clearTimeout(forced);
  process.stdout.write('outpost stopped\n');
  return 0;
}

async function main(argv: string[]): Promise<number> {
  const [command = 'run', ...rest] = argv;
  const config = defaultConfig();
  switch (command) {
    case 'run':
      return run(config);
    case 'log':
      return runLogCli(rest, config.storage.dir);
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
