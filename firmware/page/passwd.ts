import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { chown, readFile, rename, stat, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/**
 * The technician's password file: one line `user:scrypt:N:r:p:salt:hash` (salt and hash in base64). scrypt
 * parameters travel in the line, so a later change of cost still verifies older files.
 */

/** The one local account; the page has no user management, a site has one technician role. */
export const TECHNICIAN_USER = 'technician';
/** scrypt cost 2^15 with r=8: about 32 MiB and ~100 ms on a Pi 4, OWASP's minimum for scrypt. */
const SCRYPT_N = 2 ** 15;
const SCRYPT_R = 8;
const SCRYPT_P = 1;
/** Memory scrypt may use: N * r * 128 bytes is 32 MiB, and Node's 32 MiB default leaves no headroom. */
const SCRYPT_MAXMEM_BYTES = 64 * 1024 * 1024;
/** 128-bit salt, the least NIST SP 800-132 allows. */
const SALT_BYTES = 16;
/** 256-bit derived key: the length compared at login. */
const HASH_BYTES = 32;
/** A password shorter than this is refused by `outpost passwd`: the page is reachable from the site LAN. */
export const PASSWORD_CHARS_MIN = 10;
/** Longer input is not a password (a pasted file): refused rather than hashed. */
export const PASSWORD_CHARS_MAX = 1024;

export interface PasswordEntry {
  user: string;
  n: number;
  r: number;
  p: number;
  salt: Buffer;
  hash: Buffer;
}

function derive(password: string, salt: Buffer, opts: ScryptOptions): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const done = (err: Error | null, key: Buffer) => (err ? reject(err) : resolve(key));
    scrypt(password, salt, HASH_BYTES, { ...opts, maxmem: SCRYPT_MAXMEM_BYTES }, done);
  });
}

export async function hashPassword(user: string, password: string): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const hash = await derive(password, salt, { N: SCRYPT_N, r: SCRYPT_R, p: SCRYPT_P });
  return `${user}:scrypt:${SCRYPT_N}:${SCRYPT_R}:${SCRYPT_P}:${salt.toString('base64')}:${hash.toString('base64')}\n`;
}

/** Parses the file's text; the error names the file and what is wrong, never the hash. */
export function parsePasswordFile(text: string, file: string): PasswordEntry {
  const line = text.split('\n').find((l) => l.trim() !== '');
  const parts = line?.trim().split(':') ?? [];
  const [user, scheme, n, r, p, salt, hash] = parts;
  if (parts.length !== 7 || scheme !== 'scrypt' || !user) {
    throw new Error(`${file}: expected one line user:scrypt:N:r:p:salt:hash (set it with \`outpost passwd\`)`);
  }
  const entry = {
    user,
    n: Number(n),
    r: Number(r),
    p: Number(p),
    salt: Buffer.from(salt!, 'base64'),
    hash: Buffer.from(hash!, 'base64'),
  };
  const positive = [entry.n, entry.r, entry.p].every((v) => Number.isInteger(v) && v > 0);
  const validCost = positive && entry.n * entry.r * 128 <= SCRYPT_MAXMEM_BYTES;
  if (!validCost || entry.hash.length !== HASH_BYTES || entry.salt.length === 0) {
    const why = 'the scrypt parameters, salt or hash are not valid';
    throw new Error(`${file}: ${why} (set it again with \`outpost passwd\`)`);
  }
  return entry;
}

export async function readPasswordFile(file: string): Promise<PasswordEntry> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new Error(`${file}: ${err.code ?? err.message} (set a password with \`outpost passwd\`)`, { cause: err });
  });
  return parsePasswordFile(text, file);
}

/** Constant-time compare of the derived key; a wrong user costs the same scrypt run as a wrong password. */
export async function verifyPassword(entry: PasswordEntry, user: string, password: string): Promise<boolean> {
  if (password.length > PASSWORD_CHARS_MAX) return false;
  const derived = await derive(password, entry.salt, { N: entry.n, r: entry.r, p: entry.p });
  return timingSafeEqual(derived, entry.hash) && user === entry.user;
}

/** Written beside the target and renamed: a crash never leaves a half-written file that locks everyone out. */
export async function writePasswordFile(file: string, line: string): Promise<void> {
  const temporary = `${file}.tmp-${process.pid}`;
  // 0640: root writes it (sudo outpost passwd), the service's group reads it, as with board.json. That group
  // is the folder's (install.sh makes /etc/outpost root:outpost): a file root creates is root:root, which
  // the service could not read, and every login would fail.
  await writeFile(temporary, line, { mode: 0o640 });
  if (process.getuid?.() === 0) await chown(temporary, 0, (await stat(dirname(file))).gid);
  await rename(temporary, file);
}
