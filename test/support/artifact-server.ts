import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type Server } from 'node:https';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { KeyPair } from './tls-certs.js';

/**
 * An HTTPS file server on loopback for update artifacts, written from RFC 9110 (§14 Range requests, §13.1.5
 * If-Range) and Azure Blob Storage's documented GET Blob behaviour: `Range: bytes=N-` answers 206 with
 * `Content-Range: bytes N-(size-1)/size`, an offset past the end answers 416, every response carries a strong
 * ETag and Last-Modified. With `ifRange: true` (generic servers) a non-matching If-Range gets the whole new
 * artifact (200); Blob Storage does not list If-Range among its conditional headers, so with `ifRange: false`
 * it is ignored and a range of whatever is stored now is sent, which the client must catch by the ETag.
 */

export interface ServedRequest {
  path: string;
  range: string | null;
  ifRange: string | null;
  status: number;
}

/** Bytes written per slice of a body: small enough that a cut lands mid-body, large enough to be quick. */
const BODY_SLICE_BYTES = 64 * 1024;

export class ArtifactServer {
  readonly requests: ServedRequest[] = [];
  /** Body bytes handed to the socket, over every response. */
  bodyBytesWritten = 0;
  private body: Buffer = Buffer.alloc(0);
  private etag = '';
  private lastModified = '';
  private generation = 0;
  /** Answers for the next requests, in order, before any artifact logic (e.g. [503, 503]). */
  readonly failNext: number[] = [];
  /** GET /hop/<n>/<name> redirects to /hop/<n-1>/<name>, and /hop/0/<name> to /<name>. */
  redirectTo: (location: string) => string = (location) => location;

  private constructor(
    private readonly server: Server,
    readonly port: number,
    readonly opts: { ifRange: boolean },
  ) {}

  static async start(tls: KeyPair, opts: { ifRange?: boolean } = {}): Promise<ArtifactServer> {
    const server = createServer({ cert: tls.cert, key: tls.key });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const served = new ArtifactServer(server, port, { ifRange: opts.ifRange ?? true });
    served.setArtifact(Buffer.alloc(0));
    server.on('request', (req, res) => served.handle(req, res));
    return served;
  }

  /** The artifact at every path; a new one gets a new ETag and Last-Modified. Returns its sha256. */
  setArtifact(body: Buffer): string {
    this.generation += 1;
    this.body = body;
    const sha256 = createHash('sha256').update(body).digest('hex');
    this.etag = `"0x${sha256.slice(0, 16).toUpperCase()}${this.generation}"`;
    this.lastModified = new Date(Date.UTC(2026, 0, 1, 0, 0, this.generation)).toUTCString();
    return sha256;
  }

  url(name = 'outpost.tar.gz', port = this.port): string {
    return `https://localhost:${port}/${name}?sv=2024-01-01&sig=secret`;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    this.server.close();
    await once(this.server, 'close');
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const path = new URL(req.url ?? '/', 'https://localhost').pathname;
    const range = req.headers.range ?? null;
    const ifRange = (req.headers['if-range'] as string | undefined) ?? null;
    const record = (status: number) => this.requests.push({ path, range, ifRange, status });
    const fail = this.failNext.shift();
    if (fail !== undefined) {
      record(fail);
      res.writeHead(fail).end();
      return;
    }
    const hop = /^\/hop\/(\d+)\/(.+)$/.exec(path);
    if (hop !== null) {
      const n = Number(hop[1]);
      const next = n === 0 ? `/${hop[2]}` : `/hop/${n - 1}/${hop[2]}`;
      record(302);
      res.writeHead(302, { location: this.redirectTo(next) }).end();
      return;
    }
    const headers = { etag: this.etag, 'last-modified': this.lastModified, 'accept-ranges': 'bytes' };
    const start = this.rangeStart(range, ifRange);
    if (start === 'unsatisfiable') {
      record(416);
      res.writeHead(416, { ...headers, 'content-range': `bytes */${this.body.length}` }).end();
      return;
    }
    const size = this.body.length;
    if (start === null) {
      record(200);
      res.writeHead(200, { ...headers, 'content-length': size });
    } else {
      record(206);
      const contentRange = `bytes ${start}-${size - 1}/${size}`;
      res.writeHead(206, { ...headers, 'content-length': size - start, 'content-range': contentRange });
    }
    void this.send(res, this.body.subarray(start ?? 0));
  }

  /** null: send the whole body (no Range, or an If-Range that does not match). */
  private rangeStart(range: string | null, ifRange: string | null): number | null | 'unsatisfiable' {
    if (range === null) return null;
    const match = /^bytes=(\d+)-$/.exec(range);
    if (match === null) return null;
    if (this.opts.ifRange && ifRange !== null && ifRange !== this.etag && ifRange !== this.lastModified) return null;
    const start = Number(match[1]);
    return start >= this.body.length ? 'unsatisfiable' : start;
  }

  private async send(res: ServerResponse, body: Buffer): Promise<void> {
    for (let offset = 0; offset < body.length && !res.destroyed; offset += BODY_SLICE_BYTES) {
      const slice = body.subarray(offset, offset + BODY_SLICE_BYTES);
      this.bodyBytesWritten += slice.length;
      if (!res.write(slice) && !(await drained(res))) return;
    }
    res.end();
  }
}

/** True once the response drains, false if it closes first; no listener is left behind either way. */
function drained(res: ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (ok: boolean) => () => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(ok);
    };
    const onDrain = done(true);
    const onClose = done(false);
    res.once('drain', onDrain);
    res.once('close', onClose);
  });
}
