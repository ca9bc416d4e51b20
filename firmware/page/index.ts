import { once } from 'node:events';
import { join } from 'node:path';
import { createServer, type Server } from 'node:https';
import type { PageConfig } from '../config/page.js';
import type { Logger } from '../log/logger.js';
import { Assets, defaultAssetsDir } from './assets.js';
import { BacklogHistory, HistoryFile, loadHistoryFile } from './history.js';
import type { PageHost } from './host.js';
import { readPasswordFile } from './passwd.js';
import { PageHandler } from './server.js';
import { pageTls } from './tls.js';

/** A request whose headers take longer is cut off: a slow client must not pin one of few sockets. */
const HEADERS_TIMEOUT_MS = 10_000;
/** A whole request (headers and body) past this is cut off; the live stream is a response, not bound by it. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Connections at once: a technician's browser opens about six; more is somebody else. */
const CONNECTIONS_MAX = 32;

/** In the data directory, beside the store's files; the store ignores names it does not know. */
export const HISTORY_FILE_NAME = 'page-history.bin';

export type { PageHost } from './host.js';

export interface PageServer {
  port: number;
  handler: PageHandler;
  close(): Promise<void>;
}

export interface StartPageOptions {
  config: PageConfig;
  host: PageHost;
  logger: Logger;
  /** Where app.js and the stylesheets are; default dist/page beside the bundle. */
  assetsDir?: string;
}

/** The technician's HTTPS page. Imported by firmware/ops/service.ts only when board.json enables it. */
export async function startPage(opts: StartPageOptions): Promise<PageServer> {
  const { config, host, logger } = opts;
  const assets = await Assets.load(opts.assetsDir ?? defaultAssetsDir());
  const tls = await pageTls(host.dataDir, host.gatewayId, host.hubSection);
  const history = await openHistory(host.dataDir, logger);
  const handler = new PageHandler({
    host,
    logger,
    assets,
    history,
    // Read at each login, so `outpost passwd` takes effect without a restart.
    password: () => readPasswordFile(config.passwordFile),
  });
  const tlsOptions = { cert: tls.cert, key: tls.key, minVersion: 'TLSv1.2' as const };
  const server: Server = createServer(tlsOptions, (req, res) => handler.handle(req, res));
  server.headersTimeout = HEADERS_TIMEOUT_MS;
  server.requestTimeout = REQUEST_TIMEOUT_MS;
  server.maxConnections = CONNECTIONS_MAX;
  // A TLS handshake that fails (a scanner, a browser refusing the self-signed certificate) is not an error of ours.
  server.on('tlsClientError', () => {});
  server.listen(config.port, config.host);
  await Promise.race([
    once(server, 'listening'),
    once(server, 'error').then(([err]) => {
      handler.close();
      throw new Error(`page.listen ${config.host}:${config.port}: ${(err as Error).message}`, { cause: err });
    }),
  ]);
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.port;
  const fields = { page: 'listen', host: config.host, port, certificate: tls.source };
  logger.info(fields, `page: https://${config.host}:${port}/`);
  return {
    port,
    handler,
    close: async () => {
      handler.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await history.close();
    },
  };
}

/** The chart's day survives a restart in a small file in the data directory; a bad one is reported, not fatal. */
async function openHistory(dataDir: string, logger: Logger): Promise<BacklogHistory> {
  const path = join(dataDir, HISTORY_FILE_NAME);
  const loaded = await loadHistoryFile(path);
  if (loaded.problem !== null) logger.warn({ page: 'history', file: path }, `page: ${loaded.problem}`);
  return new BacklogHistory(loaded.samples, new HistoryFile(path));
}
