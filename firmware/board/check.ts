import { loadBoard, loadVariant } from './board.js';
import { scrubText } from '../log/redact.js';
import { ConfigError, ConfigErrors } from '../config/errors.js';
import { displayPath, readJsonObject } from '../config/layers.js';
import type { DeviceConfig } from '../config/types.js';

export type BoardCheckResult =
  { ok: true; file: string; summary: string } | { ok: false; file: string; error: ConfigError };

/**
 * Validates a board file without starting anything. A file with a "variant" field is a variant from boards/
 * (checked with the bases it extends); anything else is a top-level board.json (checked with its variant).
 */
export async function checkBoard(file: string, opts: { files?: boolean } = {}): Promise<BoardCheckResult> {
  const shown = displayPath(file);
  try {
    const json = await readJsonObject(file);
    if ('variant' in json) {
      const variant = await loadVariant(file);
      const devices = describeDevices(variant.devices, Object.keys(variant.buses).length);
      return { ok: true, file: shown, summary: `variant ${variant.variant}: ${devices}` };
    }
    const board = await loadBoard(file, { files: opts.files ?? true });
    const devices = describeDevices(board.devices, Object.keys(board.buses).length);
    const summary = `board ${board.identity.gatewayId} on variant ${board.variant}: ${devices}`;
    return { ok: true, file: shown, summary };
  } catch (error) {
    if (error instanceof ConfigError) return { ok: false, file: shown, error };
    throw error;
  }
}

function describeDevices(devices: DeviceConfig[], busCount: number): string {
  const enabled = devices.filter((device) => device.status === 'okay').length;
  return `${busCount} buses, ${devices.length} devices (${enabled} okay, ${devices.length - enabled} disabled)`;
}

const USAGE = `usage: outpost board check [--no-files] [file ...]   (default: $OUTPOST_BOARD, else board.json)
  --no-files   do not read the certificate, key and connection string files the board names (checking a
               board on a workstation before its files are on the gateway)`;

/**
 * `outpost board check [file ...]`: prints one line per file and returns the exit code: 0 when every file
 * is valid, 1 when any is not, 2 for a usage error.
 */
export async function runBoardCheckCli(
  args: string[],
  io: { out: (line: string) => void; err: (line: string) => void } = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (args.some((arg) => arg === '-h' || arg === '--help')) {
    io.out(USAGE);
    return 0;
  }
  const files = !args.includes('--no-files');
  const unknown = args.find((arg) => arg.startsWith('-') && arg !== '--no-files');
  if (unknown) {
    io.err(`unknown option ${unknown}\n${USAGE}`);
    return 2;
  }
  let failed = 0;
  // Without files, the active board, as `outpost run` finds it (the installed wrapper sets OUTPOST_BOARD).
  const named = args.filter((arg) => arg !== '--no-files');
  for (const file of named.length > 0 ? named : [env.OUTPOST_BOARD || 'board.json']) {
    const result = await checkBoard(file, { files });
    if (result.ok) {
      io.out(`ok    ${result.file}: ${result.summary}`);
    } else {
      failed++;
      const errors = result.error instanceof ConfigErrors ? result.error.errors : [result.error];
      // An error quotes the bad value: a url with a password in it must not reach a terminal or a CI log.
      for (const error of errors) io.err(scrubText(`error ${error.message}`));
    }
  }
  return failed === 0 ? 0 : 1;
}
