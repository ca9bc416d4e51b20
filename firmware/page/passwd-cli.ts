import type { Readable } from 'node:stream';
import { hashPassword, PASSWORD_CHARS_MAX, PASSWORD_CHARS_MIN, TECHNICIAN_USER, writePasswordFile } from './passwd.js';

/** Reads at most `charsMax` + a newline: a longer stdin is refused, not buffered without end. */
async function readSecret(input: Readable, charsMax: number): Promise<string | null> {
  let text = '';
  for await (const chunk of input) {
    text += String(chunk);
    if (text.length > charsMax + 2) return null;
    if (text.includes('\n')) break;
  }
  return text.split(/\r?\n/)[0] ?? '';
}

/**
 * `outpost passwd`: sets the technician page's password (user "technician") in `file`, hashed with scrypt.
 * stdin rather than an argument, so the password is in no shell history and no process list.
 */
export async function runPasswdCli(
  file: string,
  input: Readable,
  io: { out: (line: string) => void; err: (line: string) => void },
): Promise<number> {
  const password = await readSecret(input, PASSWORD_CHARS_MAX);
  if (password === null || password.length < PASSWORD_CHARS_MIN || password.length > PASSWORD_CHARS_MAX) {
    const limits = `${PASSWORD_CHARS_MIN} to ${PASSWORD_CHARS_MAX} characters`;
    io.err(`outpost passwd: the password must be ${limits} on one line`);
    return 1;
  }
  await writePasswordFile(file, await hashPassword(TECHNICIAN_USER, password));
  io.out(`password for "${TECHNICIAN_USER}" written to ${file}`);
  return 0;
}
