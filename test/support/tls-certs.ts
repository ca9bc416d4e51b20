import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * A throwaway certificate authority made with the system's `openssl` at test time, so no key material is
 * checked in and nothing expires in the repository.
 */

const run = promisify(execFile);
/** Certificates only need to outlive a test run. */
const CERT_VALIDITY_DAYS = 2;

export interface KeyPair {
  /** PEM certificate. */
  cert: string;
  /** PEM private key. */
  key: string;
}

export interface TestCa extends KeyPair {
  /** Issues a certificate for `commonName`; `serverNames` become DNS/IP subjectAltNames (servers only). */
  issue(commonName: string, serverNames?: string[]): Promise<KeyPair>;
  /** Removes the temp dir holding the keys. */
  dispose(): Promise<void>;
}

/** A leaf certificate (number `serial` of this CA) signed by the CA's key in `dir`. */
async function issueLeaf(
  { dir, caCert, caKey }: { dir: string; caCert: string; caKey: string },
  serial: number,
  commonName: string,
  serverNames: string[],
): Promise<KeyPair> {
  const base = path.join(dir, `leaf-${serial}`);
  await run('openssl', [
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    `${base}.key`,
    '-out',
    `${base}.csr`,
    '-subj',
    `/CN=${commonName}`,
  ]);
  const altNames = serverNames.map((name) => (/^[\d.]+$/.test(name) ? `IP:${name}` : `DNS:${name}`));
  const ext = [
    'basicConstraints=CA:FALSE',
    `extendedKeyUsage=${serverNames.length > 0 ? 'serverAuth' : 'clientAuth'}`,
    ...(altNames.length > 0 ? [`subjectAltName=${altNames.join(',')}`] : []),
  ];
  await writeFile(`${base}.ext`, ext.join('\n') + '\n');
  await run('openssl', [
    'x509',
    '-req',
    '-in',
    `${base}.csr`,
    '-CA',
    caCert,
    '-CAkey',
    caKey,
    '-set_serial',
    String(serial + 1000),
    '-days',
    String(CERT_VALIDITY_DAYS),
    '-extfile',
    `${base}.ext`,
    '-out',
    `${base}.crt`,
  ]);
  return { cert: await readFile(`${base}.crt`, 'utf8'), key: await readFile(`${base}.key`, 'utf8') };
}

export async function createTestCa(): Promise<TestCa> {
  const dir = await mkdtemp(path.join(tmpdir(), 'outpost-ca-'));
  const caKey = path.join(dir, 'ca.key');
  const caCert = path.join(dir, 'ca.crt');
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-keyout',
    caKey,
    '-out',
    caCert,
    '-days',
    String(CERT_VALIDITY_DAYS),
    '-subj',
    '/CN=outpost test CA',
    '-addext',
    'basicConstraints=critical,CA:TRUE',
    '-addext',
    'keyUsage=critical,keyCertSign,cRLSign',
  ]);
  let serial = 0;

  const issue = (commonName: string, serverNames: string[] = []): Promise<KeyPair> => {
    serial += 1;
    return issueLeaf({ dir, caCert, caKey }, serial, commonName, serverNames);
  };

  return {
    cert: await readFile(caCert, 'utf8'),
    key: await readFile(caKey, 'utf8'),
    issue,
    dispose: () => rm(dir, { recursive: true, force: true }),
  };
}
