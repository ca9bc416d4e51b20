import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { RingLog } from './log.js';
import { DEFAULTS } from './options.js';
import { verifyLog } from './verify.js';
import { UPSTREAM_LANE } from './names.js';

const USAGE = `usage: outpost log <stat|verify|dump> [--dir DATA_DIR] [--json]
  stat                         lanes, backlog, oldest pending age, counters, bytes on disk
  verify                       read every record, check every CRC, report damage (exit 1 if any)
  dump --from SEQ --limit N    records as JSON lines [--lane NAME] (default lane: upstream)`;

/** Records `dump` prints at most in one call. */
const DUMP_LIMIT_MAX = 1_000_000;

export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleIo: CliIo = { out: (l) => process.stdout.write(`${l}\n`), err: (l) => process.stderr.write(`${l}\n`) };

function flag(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

/** `outpost log ...`: returns the process exit code. Opens the log read-only: safe beside a running gateway. */
export async function runLogCli(args: string[], defaultDir: string, io: CliIo = consoleIo): Promise<number> {
  const [command] = args;
  const dir = flag(args, '--dir') ?? defaultDir;
  const json = args.includes('--json');
  if (!command || !['stat', 'verify', 'dump'].includes(command)) {
    io.err(USAGE);
    return 2;
  }
  if (!existsSync(join(dir, 'lanes'))) {
    io.err(`outpost log: no ring log in ${dir} (no lanes/ directory)`);
    return 2;
  }
  if (command === 'verify') return verify(dir, json, io);
  const log = await RingLog.open({ dir, readOnly: true, quotaBytes: Number.MAX_SAFE_INTEGER });
  try {
    return command === 'stat' ? stat(log, json, io) : await dump(log, args, io);
  } finally {
    await log.close();
  }
}

function stat(log: RingLog, json: boolean, io: CliIo): number {
  const s = log.stats();
  if (json) {
    io.out(JSON.stringify(s));
    return 0;
  }
  io.out(`segments ${s.segmentCount}, ${s.bytesOnDisk} bytes on disk`);
  io.out(
    `expired ${s.expiredRecords}, dropped ${s.droppedRecords}, corrupt ${s.corruptRecords} (${s.corruptBytes} bytes)`,
  );
  for (const l of s.lanes) {
    io.out(
      `lane ${l.lane}: pending ${l.pendingRecords} records / ${l.pendingBytes} bytes, oldest ${(l.oldestPendingAgeMs / 1000).toFixed(1)} s, acked ${l.ackedSeq}, last ${l.lastSeq}, ${l.segments} segments`,
    );
  }
  return 0;
}

async function verify(dir: string, json: boolean, io: CliIo): Promise<number> {
  const verdicts = await verifyLog(dir, DEFAULTS.recordBytesMax);
  let damaged = 0;
  for (const v of verdicts) {
    if (v.damage.length > 0) damaged++;
    if (json) io.out(JSON.stringify(v));
    else {
      const damage = v.damage.map((d) => `${d.kind} ${d.fromByte}..${d.toByte}`).join(', ');
      io.out(
        `${v.lane}/${v.segment}: ${v.records} records (${v.firstSeq}..${v.lastSeq}), ${v.bytes} bytes${v.sealed ? ', sealed' : ''}${damage ? `, DAMAGE: ${damage}` : ', ok'}`,
      );
    }
  }
  io.out(`verified ${verdicts.length} segments: ${damaged === 0 ? 'no damage' : `${damaged} damaged`}`);
  return damaged === 0 ? 0 : 1;
}

async function dump(log: RingLog, args: string[], io: CliIo): Promise<number> {
  const from = Number(flag(args, '--from') ?? 1);
  const limit = Number(flag(args, '--limit') ?? 100);
  const laneName = flag(args, '--lane') ?? UPSTREAM_LANE;
  if (!Number.isInteger(from) || from < 1 || !Number.isInteger(limit) || limit < 1 || limit > DUMP_LIMIT_MAX) {
    io.err(`outpost log dump: --from must be a seq ≥ 1 and --limit 1..${DUMP_LIMIT_MAX}`);
    return 2;
  }
  const lane = log.lanes.get(laneName);
  if (!lane) {
    io.err(`outpost log dump: no lane "${laneName}" (lanes: ${[...log.lanes.keys()].join(', ') || 'none'})`);
    return 2;
  }
  let next = from;
  let left = limit;
  while (left > 0) {
    const recs = await lane.read(next, { recordsMax: Math.min(left, 1000) });
    if (recs.length === 0) break;
    for (const r of recs) {
      const text = r.body.toString('utf8');
      const printable = Buffer.from(text, 'utf8').equals(r.body) && !/[\x00-\x08\x0e-\x1f]/.test(text);
      io.out(
        JSON.stringify({
          seq: r.seq,
          enqueuedAt: new Date(r.enqueuedAtMs).toISOString(),
          expiresAtStoreMs: r.expiresAtStoreMs,
          properties: r.properties,
          ...(printable ? { body: text } : { bodyBase64: r.body.toString('base64') }),
        }),
      );
    }
    left -= recs.length;
    next = recs[recs.length - 1]!.seq + 1;
  }
  return 0;
}
