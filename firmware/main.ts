import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadBoard } from './board/board.js';
import { runBoardCheckCli } from './board/check.js';
import { ConfigError, ConfigErrors } from './config/errors.js';
import { PAGE_PASSWORD_FILE_DEFAULT } from './config/page.js';
import { renderReference } from './config/reference.js';
import type { LoadedBoard } from './config/types.js';
import { OTA_UPDATE_HEALTH_SECS_DEFAULT } from './config/ota.js';
import { checkReleaseAddons } from './ops/addons.js';
import { createLogger, logFormatFromEnv, logLevelFromEnv, type Logger } from './log/logger.js';
import { RecentErrors } from './ops/report.js';
import { Ops } from './ops/service.js';
import { runScopeCli } from './ops/scope-cli.js';
import { runStatusCli } from './ops/status-cli.js';
import { startUpdateHealth } from './ota/health.js';
import { runLogCli } from './store/cli.js';
import { Runtime } from './runtime.js';
import { formatStatus } from './ops/status-line.js';

const USAGE = `usage: outpost [run] [--board FILE]
       outpost status [--json] [--watch] [--socket PATH]
       outpost log <stat|verify|dump> [--dir DATA_DIR] ...
       outpost board check [--no-files] [FILE ...]
       outpost board reference          (every board.json option, as markdown)
       outpost board enroll --dps-scope SCOPE --dps-group-key-file FILE [BOARD]   (see --help)
       outpost scope publish [--board FILE] SCOPE.json
       outpost update [--board FILE] [--manifest FILE] [--allow-downgrade] TARBALL   (a signed release, then restart)
       outpost passwd [--board FILE] [--file PATH]   (technician page password, read from stdin)
The active board is ./board.json (or OUTPOST_BOARD); OUTPOST_DATA_DIR overrides its storage.dataDir and
OUTPOST_HUB_PORT the local hub's TCP port (0 = any free port). Logs go to stdout at OUTPOST_LOG_LEVEL
(default info): readable lines on a terminal, JSON lines otherwise (OUTPOST_LOG_FORMAT=json|pretty).`;
/** A graceful stop that takes longer than this is cut short: it stays under systemd's TimeoutStopSec (20 s). */
const STOP_TIMEOUT_MS = 15_000;

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `files`: also read the certificates and keys the board names (run), which `status` and `log` do not need. */
async function board(args: string[], files = false): Promise<LoadedBoard> {
  return loadBoard(resolve(flag(args, '--board') ?? process.env.OUTPOST_BOARD ?? 'board.json'), { files });
}

/** Resolves on the first SIGINT/SIGTERM. Installed before start-up so a signal during start is not fatal. */
function stopSignal(logger: Logger): Promise<string> {
  return new Promise((done) => {
    let stopping = false;
    // A second signal while stopping must not kill the flush half-way: STOP_TIMEOUT_MS bounds the stop.
    const onSignal = (signal: string) => {
      logger.info({ signal }, stopping ? `outpost: ${signal}, already stopping` : `outpost: ${signal}, stopping`);
      stopping = true;
      done(signal);
    };
    process.on('SIGINT', () => onSignal('SIGINT'));
    process.on('SIGTERM', () => onSignal('SIGTERM'));
  });
}

/**
 * SIGUSR2 (a modem hook: the link is up) wakes the uplink. Installed first, like the stop signals: Node's
 * default action for SIGUSR2 is to exit, and a modem hook is most likely to fire at boot, during start-up.
 * Until `wake` is set the signal is only logged: the pump's first connect is immediate anyway.
 */
function wakeSignal(logger: Logger): { wake: ((reason: string) => void) | null } {
  const target: { wake: ((reason: string) => void) | null } = { wake: null };
  process.on('SIGUSR2', () => {
    if (target.wake === null) logger.info('outpost: SIGUSR2 during start-up; the uplink connects when it starts');
    else target.wake('SIGUSR2');
  });
  return target;
}

async function run(args: string[], logger: Logger): Promise<number> {
  const stopped = stopSignal(logger);
  const woken = wakeSignal(logger);
  // import.meta.url is the bundle's own file: a release keeps its manifest and node_modules beside it.
  const bundleDir = dirname(fileURLToPath(import.meta.url));
  const release = checkReleaseAddons(bundleDir);
  if (release)
    logger.info({ release }, `outpost ${release.version} release for ${release.target}, node ${process.version}`);
  const loaded = await board(args, true);
  // The sections that most often need a look on a support call; secrets in them are redacted by field name.
  logger.debug({ uplink: loaded.uplink, hub: loaded.hub, metrics: loaded.metrics ?? null }, 'board sections');
  const hubPort = process.env.OUTPOST_HUB_PORT;
  const errors = new RecentErrors();
  const runtime = new Runtime(loaded, {
    dataDir: process.env.OUTPOST_DATA_DIR ? resolve(process.env.OUTPOST_DATA_DIR) : undefined,
    hubPort: hubPort === undefined ? undefined : Number(hubPort),
    release: release ? { version: release.version, target: release.target, bundleDir } : undefined,
    // The stop path SIGTERM takes (exit 0 after a clean stop); Restart=always then starts the new release.
    requestRestart: (reason) => {
      logger.info({ reason }, `outpost: restarting for ${reason}`);
      process.kill(process.pid, 'SIGTERM');
    },
    log: logger,
    onError: (source, err) => {
      errors.add(source, err);
      logger.warn({ source, err }, `${source}: ${err.message}`);
    },
  });
  woken.wake = (reason) => runtime.wake(reason);
  await runtime.start();
  // READY=1 goes out from here: the store is open and the hub listens.
  const ops = await Ops.start({ runtime, logger, errors, version: release?.version }).catch(async (err: unknown) => {
    // A metrics port in use must not leave the hub and the log open behind a process that cannot serve.
    await runtime.stop();
    throw err;
  });
  const hub = runtime.status().hub?.ports;
  logger.info(
    {
      board: loaded.variant,
      dataDir: runtime.dataDir,
      hubPort: hub?.tcp ?? null,
      hubTlsPort: hub?.tls ?? null,
      statusSocket: ops.socketPath,
      metricsPort: ops.metricsPort,
      pagePort: ops.pagePort,
    },
    `outpost ready: board ${loaded.variant} (${loaded.variantFile}), data in ${runtime.dataDir}`,
  );
  // A pending OTA update of this release commits once it also reaches the cloud (when it has an uplink).
  const cloud = () => ['disabled', 'up', 'resyncing'].includes(runtime.status().link);
  const health = release ? await startUpdateHealth(bundleDir, runtime.dataDir, release.version, cloud, logger) : null;
  await stopped;
  health?.stop();
  const forced = setTimeout(() => {
    logger.error(`outpost: stop took longer than ${STOP_TIMEOUT_MS} ms, exiting`);
    process.exit(1);
  }, STOP_TIMEOUT_MS).unref();
  await ops.stopping();
  const final = runtime.status();
  await runtime.stop();
  clearTimeout(forced);
  logger.info(formatStatus(final));
  logger.info('outpost stopped');
  await ops.close();
  return 0;
}

async function main(argv: string[], logger: Logger): Promise<number> {
  const [command = 'run', ...rest] = argv;
  switch (command) {
    case 'run':
      return run(rest, logger);
    case 'status': {
      const dataDir =
        process.env.OUTPOST_DATA_DIR ??
        (await board(rest).then(
          (b) => b.storage.dataDir,
          () => '.',
        ));
      return runStatusCli(rest, resolve(dataDir));
    }
    case 'log': {
      const dataDir = flag(rest, '--dir') ?? process.env.OUTPOST_DATA_DIR ?? (await board(rest)).storage.dataDir;
      return runLogCli(rest, resolve(dataDir));
    }
    case 'update': {
      const { runUpdateCli } = await import('./ota/cli.js');
      const loaded = await board(rest);
      return runUpdateCli(
        rest.filter((a, i) => a !== '--board' && rest[i - 1] !== '--board'),
        {
          bundleDir: dirname(fileURLToPath(import.meta.url)),
          dataDir: resolve(process.env.OUTPOST_DATA_DIR ?? loaded.storage.dataDir),
          healthSecs: loaded.ota?.updateHealthSecs ?? OTA_UPDATE_HEALTH_SECS_DEFAULT,
          keysDir: process.env.OUTPOST_OTA_KEYS_DIR,
          out: (line) => process.stdout.write(`${line}\n`),
          err: (line) => process.stderr.write(`${line}\n`),
        },
      );
    }
    case 'scope':
      return runScopeCli(rest, await board(rest, true), {
        out: (text) => process.stdout.write(text),
        err: (text) => process.stderr.write(text),
      });
    case 'board':
      if (rest[0] === 'check') return runBoardCheckCli(rest.slice(1));
      if (rest[0] === 'reference') return (process.stdout.write(renderReference()), 0);
      if (rest[0] === 'enroll') return (await import('./board/enroll-cli.js')).runEnrollCli(rest.slice(1));
      process.stderr.write(`${USAGE}\n`);
      return 2;
    case 'passwd': {
      const file = flag(rest, '--file') ?? (await board(rest)).page?.passwordFile ?? PAGE_PASSWORD_FILE_DEFAULT;
      // Only this command loads the hashing code; `run` imports it with the page, when the page is enabled.
      const { runPasswdCli } = await import('./page/passwd-cli.js');
      return runPasswdCli(resolve(file), process.stdin, {
        out: (line) => process.stdout.write(`${line}\n`),
        err: (line) => process.stderr.write(`${line}\n`),
      });
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      return 2;
  }
}

const logger = createLogger({ level: logLevelFromEnv(), ...logFormatFromEnv() });
const argv = process.argv.slice(2);
main(argv, logger).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    const message = `outpost: ${err instanceof Error ? err.message : String(err)}`;
    // The service logs to the journal as JSON; an operator at a shell reads plain text.
    if ((argv[0] ?? 'run') !== 'run') {
      process.stderr.write(`${message}\n`);
      process.exitCode = 1;
      return;
    }
    // A gateway that failed to start exits now (the log line is written synchronously): whatever it had
    // opened must not keep a half-started process alive, and systemd restarts it.
    // A bad board file is not a crash: one line per problem, each naming the file and field, no stack.
    if (err instanceof ConfigError) {
      for (const problem of err instanceof ConfigErrors ? err.errors : [err]) {
        logger.fatal({ file: problem.file, jsonPath: problem.jsonPath }, `outpost: ${problem.message}`);
      }
    } else {
      logger.fatal({ err }, message);
    }
    process.exit(1);
  },
);
