import { execFile } from 'node:child_process';
import { mkdir, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

/** Folder in the data dir holding the page's self-signed certificate when the hub has none. */
export const PAGE_TLS_DIR = 'page-tls';
/** Ten years: a gateway at a remote site must not lock its technician out when a certificate lapses. */
const SELF_SIGNED_DAYS = 3650;
/** openssl finishes an EC key in milliseconds; longer means it is hung. */
const OPENSSL_TIMEOUT_MS = 30_000;

export interface PageTls {
  cert: Buffer;
  key: Buffer;
  /** Where the pair came from, for the start-up log line. */
  source: string;
}

/** The hub's TLS section if board.json has one with a certificate and key (the same site CA then covers both). */
export function hubCertificate(hub: unknown): { certPath: string; keyPath: string } | null {
  const tls = (hub as { tls?: { certPath?: unknown; keyPath?: unknown } } | undefined)?.tls;
  if (typeof tls?.certPath !== 'string' || typeof tls.keyPath !== 'string') return null;
  return { certPath: tls.certPath, keyPath: tls.keyPath };
}

/**
 * The hub's server certificate when configured, else a self-signed P-256 pair made once with openssl into
 * `<dataDir>/page-tls/` and kept, so a technician's browser sees the same certificate on every visit.
 */
export async function pageTls(dataDir: string, gatewayId: string, hub: unknown): Promise<PageTls> {
  const fromHub = hubCertificate(hub);
  if (fromHub) {
    const [cert, key] = await Promise.all([readFile(fromHub.certPath), readFile(fromHub.keyPath)]);
    return { cert, key, source: fromHub.certPath };
  }
  const dir = join(dataDir, PAGE_TLS_DIR);
  const certFile = join(dir, 'cert.pem');
  const keyFile = join(dir, 'key.pem');
  const existing = await Promise.all([readFile(certFile), readFile(keyFile)]).catch(() => null);
  if (existing) return { cert: existing[0], key: existing[1], source: certFile };
  await mkdir(dir, { recursive: true, mode: 0o700 });
  // Written under temporary names and renamed, the key first: a crash never leaves a cert without its key.
  const args = [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    String(SELF_SIGNED_DAYS),
    '-subj',
    `/CN=${gatewayId}`,
    '-addext',
    'subjectAltName=DNS:localhost,IP:127.0.0.1',
    '-keyout',
    `${keyFile}.tmp`,
    '-out',
    `${certFile}.tmp`,
  ];
  await promisify(execFile)('openssl', args, { timeout: OPENSSL_TIMEOUT_MS }).catch((err: Error) => {
    const why = `page: cannot make a self-signed certificate in ${dir} with openssl: ${err.message}`;
    throw new Error(why, { cause: err });
  });
  await rename(`${keyFile}.tmp`, keyFile);
  await rename(`${certFile}.tmp`, certFile);
  return { cert: await readFile(certFile), key: await readFile(keyFile), source: `${certFile} (self-signed)` };
}
