import { existsSync } from 'node:fs';
import { chmod, unlink } from 'node:fs/promises';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import type { StatusReport } from './report.js';

/** The socket's file name, in $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=outpost) or the data dir. */
export const STATUS_SOCKET_NAME = 'outpost.sock';
/** Where the packaged service's socket is (RuntimeDirectory=outpost); the CLI looks here first. */
export const SERVICE_RUNTIME_DIR = '/run/outpost';
/** A request is one short line; anything longer is not a client of ours. */
const REQUEST_BYTES_MAX = 256;
/** A reply holds at most a few hundred lanes and RECENT_ERRORS_MAX errors. */
const REPLY_BYTES_MAX = 4 * 1024 * 1024;
/** A client (or server) silent this long is cut off, so a stuck peer cannot pin a socket. */
export const STATUS_REQUEST_TIMEOUT_MS = 5_000;

/** Where the running gateway listens: $RUNTIME_DIRECTORY when systemd gives one, else the data dir. */
export function serverSocketPath(dataDir: string, env: NodeJS.ProcessEnv = process.env): string {
  // RUNTIME_DIRECTORY may list several directories separated by ':'; ours is the first.
  const runtimeDir = env.RUNTIME_DIRECTORY?.split(':')[0];
  return join(runtimeDir || dataDir, STATUS_SOCKET_NAME);
}

/** Where `outpost status` asks: an explicit path, the service's runtime dir if it has a socket, else the data dir. */
export function clientSocketPath(
  dataDir: string,
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): string {
  if (explicit) return explicit;
  if (env.RUNTIME_DIRECTORY) return serverSocketPath(dataDir, env);
  const service = join(SERVICE_RUNTIME_DIR, STATUS_SOCKET_NAME);
  return existsSync(service) ? service : join(dataDir, STATUS_SOCKET_NAME);
}

export interface StatusSocket {
  path: string;
  close(): Promise<void>;
}

/**
 * Serves `status\n` with one JSON line. The caller holds the store's lock, so a socket file left by a crashed
 * run is stale and is replaced; access is limited to the service's user and group (mode 0660).
 */
export async function serveStatus(path: string, report: () => StatusReport): Promise<StatusSocket> {
  await unlink(path).catch((err: NodeJS.ErrnoException) => {
    if (err.code !== 'ENOENT')
      throw new Error(`status socket ${path}: cannot remove the stale file: ${err.message}`, { cause: err });
  });
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.setTimeout(STATUS_REQUEST_TIMEOUT_MS, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    let request = '';
    socket.on('data', (chunk: Buffer) => {
      request += chunk.toString('utf8');
      if (request.length > REQUEST_BYTES_MAX) return socket.destroy();
      if (!request.includes('\n')) return;
      const command = request.trim();
      socket.end(
        command === 'status'
          ? `${JSON.stringify(report())}\n`
          : `${JSON.stringify({ error: `unknown command ${JSON.stringify(command)}` })}\n`,
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new Error(`status socket ${path}: ${err.message}`, { cause: err })));
    server.listen(path, resolve);
  });
  await chmod(path, 0o660);
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Asks a running gateway for its status; the error names the socket and says what to check. */
export function requestStatus(path: string): Promise<StatusReport> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path);
    let reply = '';
    const fail = (why: string) => {
      socket.destroy();
      reject(new Error(`status socket ${path}: ${why}`));
    };
    socket.setTimeout(STATUS_REQUEST_TIMEOUT_MS, () => fail(`no reply within ${STATUS_REQUEST_TIMEOUT_MS} ms`));
    socket.on('connect', () => socket.write('status\n'));
    socket.on('data', (chunk: Buffer) => {
      reply += chunk.toString('utf8');
      if (reply.length > REPLY_BYTES_MAX) fail(`reply longer than ${REPLY_BYTES_MAX} bytes`);
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      fail(
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? `${err.code}: is the gateway running? (--socket PATH to ask another)`
          : err.message,
      ),
    );
    socket.on('end', () => {
      try {
        const parsed = JSON.parse(reply) as StatusReport & { error?: string };
        if (parsed.error) return fail(parsed.error);
        resolve(parsed);
      } catch {
        fail('the reply is not JSON');
      }
    });
  });
}
