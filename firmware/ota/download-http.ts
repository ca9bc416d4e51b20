import { request, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { OtaFetchError as OtaError } from './fetch-error.js';

/**
 * One GET of the artifact over Node's own https, with a Range from `start` and If-Range on the validator of
 * the bytes already held (RFC 9110 §13.1.5: the server answers 206 with the rest if the artifact is unchanged,
 * else 200 with the whole new one), following a bounded number of redirects (a blob SAS URL behind a CDN or
 * a short link). Only https is followed: a redirect to http would hand the artifact to anyone on the path.
 */

/** Redirects followed per request; a loop or a chain longer than this is refused. */
export const OTA_REDIRECTS_MAX = 5;
/** A connection that moves no byte for this long (connect, headers or body) is abandoned and retried, ms. */
export const OTA_SOCKET_IDLE_MS = 30_000;

export interface RangeRequest {
  url: string;
  /** First byte wanted; 0 asks for the whole artifact without a Range header. */
  start: number;
  /** ETag (strong only) or Last-Modified of the bytes held, for If-Range; null sends a bare Range. */
  validator: string | null;
  /** The CA bundle to trust instead of Node's (board's uplink CA); undefined keeps Node's roots. */
  ca?: string | Buffer;
  signal?: AbortSignal;
  idleMs?: number;
}

export interface RangeResponse {
  body: IncomingMessage;
  /** 200 (whole artifact) or 206 (the range asked for). */
  status: 200 | 206;
  etag: string | null;
  lastModified: string | null;
  /** From Content-Range on a 206: first byte and the artifact's total size (null when the server sent `*`). */
  rangeStart: number;
  totalBytes: number | null;
  /** Content-Length of this body, null when chunked. */
  bodyBytes: number | null;
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
const CONTENT_RANGE_PATTERN = /^bytes (\d+)-(\d+)\/(\d+|\*)$/;

/** A status that a later attempt may get past (the server or a proxy in trouble) rather than a refusal. */
function transientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

export async function requestRange(req: RangeRequest): Promise<RangeResponse> {
  let url = req.url;
  for (let hop = 0; ; hop += 1) {
    const res = await get(url, req);
    const status = res.statusCode ?? 0;
    if (REDIRECTS.has(status)) {
      res.resume();
      const location = res.headers.location;
      const refuse = (why: string) => new OtaError('REFUSED', 'http-redirect', why);
      if (location === undefined) throw refuse(`${redact(url)}: ${status} without a Location`);
      if (hop >= OTA_REDIRECTS_MAX) throw refuse(`more than ${OTA_REDIRECTS_MAX} redirects`);
      const next = new URL(location, url);
      if (next.protocol !== 'https:') throw refuse(`redirect to ${next.protocol} refused`);
      url = next.href;
      continue;
    }
    if (status === 200 || status === 206) return describe(res, status, url);
    res.resume();
    const what = `${redact(url)} answered ${status} ${res.statusMessage ?? ''}`.trim();
    if (status === 416) throw new OtaError('TRANSIENT', 'http-range', `${what} to bytes=${req.start}-`);
    throw new OtaError(transientStatus(status) ? 'TRANSIENT' : 'REFUSED', `http-${status}`, what);
  }
}

function describe(res: IncomingMessage, status: 200 | 206, url: string): RangeResponse {
  const etag = res.headers.etag ?? null;
  const lastModified = res.headers['last-modified'] ?? null;
  const length = res.headers['content-length'];
  const bodyBytes = length !== undefined && /^\d+$/.test(length) ? Number(length) : null;
  if (status === 200) return { body: res, status, etag, lastModified, rangeStart: 0, totalBytes: bodyBytes, bodyBytes };
  const match = CONTENT_RANGE_PATTERN.exec(res.headers['content-range'] ?? '');
  if (match === null) {
    res.destroy();
    throw new OtaError('TRANSIENT', 'http-range', `${redact(url)}: 206 without a usable Content-Range`);
  }
  const totalBytes = match[3] === '*' ? null : Number(match[3]);
  return { body: res, status, etag, lastModified, rangeStart: Number(match[1]), totalBytes, bodyBytes };
}

function get(url: string, req: RangeRequest): Promise<IncomingMessage> {
  const target = new URL(url);
  if (target.protocol !== 'https:') {
    return Promise.reject(new OtaError('REFUSED', 'url', `only https URLs are fetched, got ${target.protocol}`));
  }
  const headers: Record<string, string> = { 'accept-encoding': 'identity' };
  if (req.start > 0) {
    headers.range = `bytes=${req.start}-`;
    if (req.validator !== null) headers['if-range'] = req.validator;
  }
  const options: RequestOptions = { method: 'GET', headers, signal: req.signal, ...(req.ca ? { ca: req.ca } : {}) };
  const idleMs = req.idleMs ?? OTA_SOCKET_IDLE_MS;
  return new Promise((resolve, reject) => {
    let response: IncomingMessage | null = null;
    const request_ = request(target, options, (res) => resolve((response = res)));
    request_.setTimeout(idleMs, () => {
      const err = new OtaError('TRANSIENT', 'timeout', `${redact(url)}: no byte for ${idleMs} ms`);
      // Once the body flows, the reader sees the response's error, not the request's.
      response?.destroy(err);
      request_.destroy(err);
    });
    request_.on('error', (err) => reject(asTransient(err, url)));
    request_.end();
  });
}

/** Network failures are worth another attempt; what the request itself refused (TLS trust) is not. */
export function asTransient(err: unknown, url: string): OtaError {
  if (err instanceof OtaError) return err;
  const e = err as NodeJS.ErrnoException;
  const tls = typeof e.code === 'string' && /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS/.test(e.code);
  if (e.name === 'AbortError') return new OtaError('ABORTED', 'stopped', 'download stopped', { cause: err });
  const message = `${redact(url)}: ${e.message}`;
  return new OtaError(tls ? 'REFUSED' : 'TRANSIENT', tls ? 'tls' : 'network', message, { cause: err });
}

/** A SAS URL's query is a credential: only scheme, host and path go into messages and logs. */
export function redact(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}${u.search ? '?…' : ''}`;
  } catch {
    return '(bad URL)';
  }
}
