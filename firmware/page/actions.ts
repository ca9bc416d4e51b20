import { readFile } from 'node:fs/promises';
import { checkBoard } from '../board/check.js';
import { redactValue, scrubText } from '../log/redact.js';
import type { PageHost } from './host.js';

/** Device and method names as the hub accepts them: anything else is refused before reaching a driver. */
const NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;

export interface ActionResult {
  status: number;
  body: unknown;
}

export async function invokeDevice(
  host: PageHost,
  deviceId: string,
  method: string,
  payload: unknown,
): Promise<ActionResult> {
  if (!NAME_PATTERN.test(deviceId) || !NAME_PATTERN.test(method)) {
    return { status: 400, body: { error: 'device and method names are letters, digits, ".", "_" or "-"' } };
  }
  const result = await host.invokeDeviceMethod(deviceId, method, payload);
  return { status: result.status, body: result.payload };
}

export async function boardCheck(host: PageHost): Promise<ActionResult> {
  const result = await checkBoard(host.boardFile);
  return result.ok
    ? { status: 200, body: { ok: true, file: result.file, summary: result.summary } }
    : { status: 200, body: { ok: false, file: result.file, error: scrubText(result.error.message) } };
}

/**
 * One JSON file for a support call: the status report, the devices, the board check, and board.json with
 * secrets scrubbed by the same redactor as the logs (secret-named fields replaced, every string scrubbed).
 */
export async function diagnostics(host: PageHost, reported: Record<string, Record<string, unknown>>): Promise<string> {
  const text = await readFile(host.boardFile, 'utf8').catch((err: Error) => `unreadable: ${err.message}`);
  let board: unknown;
  try {
    board = JSON.parse(text);
  } catch {
    board = { unparsed: text };
  }
  const bundle = {
    generatedAt: new Date().toISOString(),
    version: host.version,
    status: host.report(),
    devices: host.devices(),
    reported,
    boardCheck: (await boardCheck(host)).body,
    boardFile: { path: host.boardFile, content: redactValue(board) },
  };
  // The whole text once more: a secret inside a device error or a lane name is caught here too.
  return scrubText(JSON.stringify(redactValue(bundle), null, 2));
}
