import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ASSET_CACHE_SECS, send, sendJson } from './http.js';

/** The files scripts/page-assets.js builds; the page cannot work without any of them. */
export const ASSET_FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'page.css': 'text/css; charset=utf-8',
  'uPlot.min.css': 'text/css; charset=utf-8',
};

/** Beside the bundle: dist/outpost.js serves dist/page/ (scripts/build.js puts them there). */
export function defaultAssetsDir(): string {
  return fileURLToPath(new URL('./page/', import.meta.url));
}

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

/** Read once at start and kept in memory (about 60 KiB): a request never touches the SD card. */
export class Assets {
  private constructor(private readonly files: Map<string, Asset>) {}

  static async load(dir: string): Promise<Assets> {
    const files = new Map<string, Asset>();
    for (const [name, type] of Object.entries(ASSET_FILES)) {
      const body = await readFile(join(dir, name)).catch((err: Error) => {
        const why = `page: asset ${join(dir, name)} is missing (${err.message}); run npm run build`;
        throw new Error(why, { cause: err });
      });
      files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
    }
    return new Assets(files);
  }

  serve(req: IncomingMessage, res: ServerResponse, name: string): void {
    const asset = this.files.get(name);
    if (!asset) return sendJson(res, 404, { error: `no asset ${name}` });
    // private: app.js is behind the login, so no shared cache may keep it.
    const headers = { 'cache-control': `private, max-age=${ASSET_CACHE_SECS}`, etag: asset.etag };
    if (req.headers['if-none-match'] === asset.etag) return send(res, 304, asset.type, '', headers);
    send(res, 200, asset.type, asset.body, headers);
  }
}
