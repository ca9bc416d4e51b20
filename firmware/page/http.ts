import type { IncomingMessage, ServerResponse } from 'node:http';
import { isJsonObject } from '../json.js';

/** A request body larger than this is refused: the page's forms and method payloads are a few hundred bytes. */
export const REQUEST_BODY_BYTES_MAX = 16 * 1024;
/** Static assets may be cached this long; a new release changes their ETag. */
export const ASSET_CACHE_SECS = 3600;
/** HSTS lifetime: one year, so a browser that once saw the page never tries it in clear text. */
const HSTS_SECS = 365 * 24 * 3600;

export const SESSION_COOKIE = 'outpost_session';
export const LOGIN_COOKIE = 'outpost_login';

/** No inline script or style anywhere: the page's code and CSS come from /assets only. */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join('; ');

export function securityHeaders(): Record<string, string> {
  return {
    'content-security-policy': CONTENT_SECURITY_POLICY,
    'strict-transport-security': `max-age=${HSTS_SECS}`,
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
  };
}

type Headers = Record<string, string | string[]>;

/** Every response goes through here, so none leaves without the security headers; dynamic ones are not cached. */
export function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string | Buffer,
  headers: Headers = {},
): void {
  res.writeHead(status, { ...securityHeaders(), 'cache-control': 'no-store', 'content-type': type, ...headers });
  res.end(body);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Headers = {}): void {
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value), headers);
}

export function cookie(name: string, value: string, maxAgeSecs?: number): string {
  const age = maxAgeSecs === undefined ? '' : `; Max-Age=${maxAgeSecs}`;
  return `${name}=${value}; Path=/; HttpOnly; Secure; SameSite=Strict${age}`;
}

export function readCookie(req: IncomingMessage, name: string): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [key, ...rest] = part.trim().split('=');
    if (key === name) return rest.join('=');
  }
  return undefined;
}

export class BodyTooLarge extends Error {}

/** The body as text, refused once past REQUEST_BODY_BYTES_MAX without reading the rest into memory. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let bytes = 0;
    req.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
      if (bytes > REQUEST_BODY_BYTES_MAX) {
        req.pause();
        reject(new BodyTooLarge(`request body over ${REQUEST_BODY_BYTES_MAX} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Form posts (login, the download form) and JSON posts (the page's fetch calls) as one flat record. */
export function parseFields(req: IncomingMessage, body: string): Record<string, unknown> {
  const type = req.headers['content-type'] ?? '';
  if (type.startsWith('application/json')) {
    if (body.trim() === '') return {};
    const value: unknown = JSON.parse(body);
    return isJsonObject(value) ? value : {};
  }
  return Object.fromEntries(new URLSearchParams(body));
}

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
