import { isAbsolute, resolve } from 'node:path';
import type { ConfigNode } from './node.js';

/**
 * board.json's optional `page` section: the technician's HTTPS page.
 *   "page": { "listen": "0.0.0.0:8443", "passwordFile": "/etc/outpost/page-passwd" }
 * Missing or `false`: no page server and no port opened. Port 0 picks a free port (tests).
 */
export interface PageConfig {
  /** Address to bind: the LAN side a technician plugs into, or 127.0.0.1 to reach it only through SSH. */
  host: string;
  /** TCP port. */
  port: number;
  /** Absolute path of the scrypt password file written by `outpost passwd`. */
  passwordFile: string;
}

/** Beside board.json in /etc/outpost (0750 root:outpost, made by install.sh), where secrets already live. */
export const PAGE_PASSWORD_FILE_DEFAULT = '/etc/outpost/page-passwd';
const LISTEN_PATTERN = /^(?:\[([0-9a-fA-F:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/;

/** `boardDir` is the folder of board.json: a relative passwordFile is resolved against it. */
export function parsePage(node: ConfigNode, boardDir: string): PageConfig | null {
  if (node.missing || node.value === false) return null;
  node.keys(['listen', 'passwordFile']);
  const listenNode = node.field('listen');
  const listen = listenNode.string({ pattern: LISTEN_PATTERN, describe: 'an address and port like "0.0.0.0:8443"' });
  const match = LISTEN_PATTERN.exec(listen)!;
  const port = Number(match[3]);
  if (port > 65_535) listenNode.fail('a TCP port between 0 and 65535 after the ":"');
  const file = node.field('passwordFile').string({ default: PAGE_PASSWORD_FILE_DEFAULT, describe: 'a file path' });
  return { host: match[1] ?? match[2]!, port, passwordFile: isAbsolute(file) ? file : resolve(boardDir, file) };
}
