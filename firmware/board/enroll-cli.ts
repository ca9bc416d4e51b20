import { chown, open, rename, rm, stat } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { checkBoard } from './check.js';
import { ConfigErrors } from '../config/errors.js';
import { readJsonObject } from '../config/layers.js';
import { scrubText } from '../log/redact.js';

/**
 * `outpost board enroll`: writes a DPS enrollment into board.json (install.sh's --dps-* options call it), so
 * the one image of a fleet gets its `uplink.provisioning` section without hand-editing JSON. The edited
 * board is checked as `run` would check it before it replaces the old one, keeping the old file's mode and
 * owner (board.json is 0640 root:outpost); a board that would not start is never written.
 */

const USAGE = `usage: outpost board enroll --dps-scope SCOPE
         (--dps-group-key-file FILE | --dps-cert-file FILE --dps-key-file FILE)
         [--dps-registration-id TEMPLATE] [--dps-endpoint HOST[:PORT]]
         [BOARD]   (default: $OUTPOST_BOARD, else board.json)
  Sets uplink to azure with uplink.provisioning (the connection string, if any, and identity.gatewayId are
  removed: the gateway id becomes the registration id, default {machineId}).`;

const FLAGS = [
  '--dps-scope',
  '--dps-group-key-file',
  '--dps-cert-file',
  '--dps-key-file',
  '--dps-registration-id',
  '--dps-endpoint',
] as const;
type Flag = (typeof FLAGS)[number];

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
}

function parseArgs(args: string[]): { flags: Map<Flag, string>; files: string[] } | string {
  const flags = new Map<Flag, string>();
  const files: string[] = [];
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (!arg.startsWith('-')) files.push(arg);
    else if (!(FLAGS as readonly string[]).includes(arg)) return `unknown option ${arg}`;
    else if (args[i + 1] === undefined) return `${arg} needs a value`;
    else flags.set(arg as Flag, args[(i += 1)]!);
  }
  if (!flags.has('--dps-scope')) return '--dps-scope is required';
  const group = flags.has('--dps-group-key-file');
  const cert = flags.has('--dps-cert-file') || flags.has('--dps-key-file');
  if (group === cert) return 'give --dps-group-key-file, or --dps-cert-file with --dps-key-file';
  if (files.length > 1) return 'one board file at most';
  return { flags, files };
}

/** The board with its uplink replaced by a DPS enrollment. */
function enrolled(board: Record<string, unknown>, flags: Map<Flag, string>): Record<string, unknown> {
  const provisioning: Record<string, string> = { idScope: flags.get('--dps-scope')! };
  const set = (key: string, flag: Flag) => flags.has(flag) && (provisioning[key] = flags.get(flag)!);
  set('globalEndpoint', '--dps-endpoint');
  set('registrationId', '--dps-registration-id');
  set('groupKeyFile', '--dps-group-key-file');
  set('certPath', '--dps-cert-file');
  set('keyPath', '--dps-key-file');
  const old = board.uplink as Record<string, unknown> | undefined;
  // What a connection-string azure uplink tuned (keepalive, interfaces, ...) still applies with DPS.
  const {
    connectionString: _cs,
    connectionStringFile: _csf,
    certFile: _cf,
    keyFile: _kf,
    provisioning: _p,
    ...kept
  } = old?.protocol === 'azure' ? old : ({} as Record<string, unknown>);
  const { gatewayId: _id, ...identity } = (board.identity ?? {}) as Record<string, unknown>;
  return { ...board, identity, uplink: { ...kept, protocol: 'azure', provisioning } };
}

export async function runEnrollCli(
  args: string[],
  io: Io = {
    out: (line) => process.stdout.write(`${line}\n`),
    err: (line) => process.stderr.write(`${line}\n`),
  },
  env: NodeJS.ProcessEnv = process.env,
): Promise<number> {
  if (args.includes('-h') || args.includes('--help')) return (io.out(USAGE), 0);
  const parsed = parseArgs(args);
  if (typeof parsed === 'string') return (io.err(`${parsed}\n${USAGE}`), 2);
  const file = resolve(parsed.files[0] ?? (env.OUTPOST_BOARD || 'board.json'));
  const board = enrolled(await readJsonObject(file), parsed.flags);
  // Beside the board, so relative paths and boards/ resolve as they will for the real file.
  const temp = join(dirname(file), `.${Date.now()}.enroll.json`);
  const { mode, uid, gid } = await stat(file);
  const handle = await open(temp, 'wx', mode & 0o777);
  try {
    await handle.writeFile(`${JSON.stringify(board, null, 2)}\n`);
    await handle.sync();
  } finally {
    await handle.close();
  }
  const result = await checkBoard(temp, { files: true });
  if (!result.ok) {
    await rm(temp, { force: true });
    const errors = result.error instanceof ConfigErrors ? result.error.errors : [result.error];
    for (const error of errors) io.err(scrubText(`error ${error.message.replace(temp, file)}`));
    io.err(`${file} left as it was`);
    return 1;
  }
  await chown(temp, uid, gid).catch(() => {});
  await rename(temp, file);
  io.out(`ok    ${file}: enrolled with DPS scope ${parsed.flags.get('--dps-scope')}; ${result.summary}`);
  return 0;
}
