import { readFile } from 'node:fs/promises';
import { hostname } from 'node:os';

/**
 * The DPS registration id from a template in board.json, so every gateway flashed from one image names
 * itself: `{serial}` (the SoC serial a Raspberry Pi's firmware puts in the device tree, the number printed
 * on nothing but unique per board), `{machineId}` (/etc/machine-id, made at first boot), `{hostname}`, or
 * literal text around them.
 */

/** Where each placeholder is read; tests point them at temp files. */
export interface RegistrationIdSources {
  /** Tried in order: the first that exists is used. */
  serialPaths: readonly string[];
  machineIdPath: string;
  hostname: () => string;
}

export const PI_SOURCES: RegistrationIdSources = {
  serialPaths: ['/proc/device-tree/serial-number', '/sys/firmware/devicetree/base/serial-number'],
  machineIdPath: '/etc/machine-id',
  hostname,
};

const PLACEHOLDERS = ['serial', 'machineId', 'hostname'] as const;
type Placeholder = (typeof PLACEHOLDERS)[number];
/**
 * DPS's rule for registration ids: at most 128 characters, lower-case letters, digits and - . _ :, ending in a
 * letter, digit or dash (DPS compares them case-insensitively, so the id is lower-cased first).
 */
const REGISTRATION_ID_PATTERN = /^[a-z0-9\-._:]{0,127}[a-z0-9-]$/;
/** DPS's limit, applied to the template too (a template that long is a mistake); the filled-in id is checked again. */
const REGISTRATION_ID_CHARS_MAX = 128;
/** A device-tree string or machine id is a few dozen bytes; more is not the file we meant. */
const SOURCE_FILE_BYTES_MAX = 4096;

/** null when the template can yield a registration id; otherwise what is wrong, for the config error. */
export function checkRegistrationIdTemplate(template: string): string | null {
  const unknown = [...template.matchAll(/\{([^}]*)\}/g)].map((m) => m[1]!).find((name) => !isPlaceholder(name));
  if (unknown !== undefined) {
    return `a template whose placeholders are {serial}, {machineId}, {hostname} (not {${unknown}})`;
  }
  const literal = template.replace(/\{[^}]*\}/g, '');
  if (!/^[A-Za-z0-9\-._:]*$/.test(literal) || template.length > REGISTRATION_ID_CHARS_MAX) {
    return 'a registration id template of at most 128 characters: letters, digits, - . _ : and placeholders';
  }
  return null;
}

function isPlaceholder(name: string): name is Placeholder {
  return (PLACEHOLDERS as readonly string[]).includes(name);
}

/** Fills the template in; throws naming the placeholder and the file when a source is missing or empty. */
export async function resolveRegistrationId(
  template: string,
  sources: RegistrationIdSources = PI_SOURCES,
): Promise<string> {
  const values = new Map<Placeholder, string>();
  for (const match of template.matchAll(/\{([^}]*)\}/g)) {
    const name = match[1]!;
    if (!isPlaceholder(name)) throw new Error(`registration id template "${template}": unknown placeholder {${name}}`);
    if (!values.has(name)) values.set(name, await placeholderValue(name, sources));
  }
  const id = template.replace(/\{([^}]*)\}/g, (_, name: Placeholder) => values.get(name)!).toLowerCase();
  if (!REGISTRATION_ID_PATTERN.test(id)) {
    throw new Error(
      `registration id "${id}" (from "${template}") breaks DPS's rules: at most 128 of ` +
        'a-z 0-9 - . _ :, ending in a letter, digit or -',
    );
  }
  return id;
}

async function placeholderValue(name: Placeholder, sources: RegistrationIdSources): Promise<string> {
  if (name === 'hostname') return nonEmpty(sources.hostname().trim(), '{hostname}', 'the host name');
  if (name === 'machineId') {
    return nonEmpty(await readSource(sources.machineIdPath), '{machineId}', sources.machineIdPath);
  }
  for (const path of sources.serialPaths) {
    const value = await readSource(path).catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return null;
      throw err;
    });
    if (value !== null) return nonEmpty(value, '{serial}', path);
  }
  throw new Error(`{serial}: none of ${sources.serialPaths.join(', ')} exists (not a Raspberry Pi? use {machineId})`);
}

async function readSource(path: string): Promise<string> {
  const bytes = await readFile(path);
  if (bytes.length > SOURCE_FILE_BYTES_MAX) throw new Error(`${path}: ${bytes.length} bytes is not an id`);
  // Device-tree strings end in NUL.
  return bytes.toString('latin1').replace(/\0+$/, '').trim();
}

function nonEmpty(value: string, placeholder: string, source: string): string {
  if (value === '') throw new Error(`${placeholder}: ${source} is empty`);
  return value;
}
