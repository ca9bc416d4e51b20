import { readFile } from 'node:fs/promises';
import { relative, isAbsolute } from 'node:path';
import { ConfigError, describeValue } from './errors.js';
import { childPath, ConfigNode } from './node.js';
import { isJsonObject } from '../json.js';

/** Board files are a few KiB; anything this large is not a board file and is refused before parsing. */
export const BOARD_FILE_BYTES_MAX = 1024 * 1024;

/**
 * How a file is named in errors: relative to the working directory when inside it, else absolute. From "/"
 * (systemd's working directory) every path is "inside", and "etc/outpost/board.json" would read as relative.
 */
export function displayPath(file: string): string {
  const cwd = process.cwd();
  if (cwd === '/') return file;
  const rel = relative(cwd, file);
  return rel === '' || rel.startsWith('..') || isAbsolute(rel) ? file : rel;
}

/** Reads a JSON object from disk; every failure is a ConfigError naming the file. */
export async function readJsonObject(file: string): Promise<Record<string, unknown>> {
  const where = { file: displayPath(file), jsonPath: '$' };
  let text: string;
  try {
    const bytes = await readFile(file);
    if (bytes.length > BOARD_FILE_BYTES_MAX) {
      throw new ConfigError(
        'UNREADABLE',
        where,
        `a file of at most ${BOARD_FILE_BYTES_MAX} bytes`,
        `${bytes.length} bytes`,
      );
    }
    text = bytes.toString('utf8');
  } catch (error) {
    if (error instanceof ConfigError) throw error;
    const code = (error as NodeJS.ErrnoException).code ?? 'an error';
    throw new ConfigError('UNREADABLE', where, 'a readable board file', code, { cause: error });
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new ConfigError('UNREADABLE', where, 'valid JSON', (error as Error).message, { cause: error });
  }
  if (!isJsonObject(parsed)) throw new ConfigError('INVALID', where, 'a JSON object', describeValue(parsed));
  return parsed;
}

/**
 * Board files layered on each other (base, variant, board.json), merged key by key: objects merge, anything
 * else replaces. Every path remembers which file last set it, so an error names the file to edit.
 */
export class LayeredDocument {
  private readonly value: Record<string, unknown> = {};
  private readonly origins = new Map<string, string>();

  constructor(rootFile: string) {
    this.origins.set('$', displayPath(rootFile));
  }

  apply(layer: Record<string, unknown>, file: string): void {
    this.mergeInto(this.value, layer, '$', displayPath(file));
  }

  root(): ConfigNode {
    return new ConfigNode(this.value, '$', (path) => this.origins.get(path));
  }

  private mergeInto(
    target: Record<string, unknown>,
    source: Record<string, unknown>,
    path: string,
    file: string,
  ): void {
    for (const [key, incoming] of Object.entries(source)) {
      const keyPath = childPath(path, key);
      const existing = target[key];
      if (isJsonObject(incoming) && isJsonObject(existing)) {
        this.mergeInto(existing, incoming, keyPath, file);
      } else {
        target[key] = structuredClone(incoming);
        this.mark(incoming, keyPath, file);
      }
    }
  }

  private mark(value: unknown, path: string, file: string): void {
    this.origins.set(path, file);
    if (isJsonObject(value)) {
      for (const [key, child] of Object.entries(value)) this.mark(child, childPath(path, key), file);
    } else if (Array.isArray(value)) {
      value.forEach((child, index) => this.mark(child, childPath(path, index), file));
    }
  }
}
