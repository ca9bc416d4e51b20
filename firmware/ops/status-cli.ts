import { setTimeout as sleep } from 'node:timers/promises';
import { formatProgress, formatReport } from './format.js';
import type { StatusReport } from './report.js';
import { clientSocketPath, requestStatus } from './status-socket.js';

/** How often `--watch` asks, ms. */
const WATCH_INTERVAL_MS = 1_000;

/**
 * `outpost status [--json] [--watch] [--socket PATH]`: asks the running gateway. `--watch` prints a progress
 * line each second while the backlog drains and returns once it is empty (or the gateway goes away).
 */
export async function runStatusCli(
  args: string[],
  dataDir: string,
  out: NodeJS.WritableStream = process.stdout,
): Promise<number> {
  const socketIndex = args.indexOf('--socket');
  const path = clientSocketPath(dataDir, socketIndex >= 0 ? args[socketIndex + 1] : undefined);
  const json = args.includes('--json');
  const report = await requestStatus(path);
  if (!args.includes('--watch')) {
    out.write(json ? `${JSON.stringify(report)}\n` : `${formatReport(report)}\n`);
    return 0;
  }
  return watch(path, report, json, out);
}

function backlog(r: StatusReport): number {
  return r.lanes.reduce((n, l) => n + l.records, 0);
}

async function watch(path: string, first: StatusReport, json: boolean, out: NodeJS.WritableStream): Promise<number> {
  const startRecords = backlog(first);
  // On a terminal the line is rewritten in place; in a pipe or the journal each update is its own line.
  const tty = (out as NodeJS.WriteStream).isTTY === true && !json;
  let report = first;
  for (;;) {
    const left = backlog(report);
    const line = json
      ? JSON.stringify({ left, ratePerSec: report.drain.ratePerSec, etaSecs: report.drain.etaSecs, link: report.link })
      : formatProgress(report, startRecords);
    out.write(tty ? `\r${line}\x1b[K` : `${line}\n`);
    if (left === 0) break;
    await sleep(WATCH_INTERVAL_MS);
    report = await requestStatus(path);
  }
  if (tty) out.write('\n');
  out.write(json ? '' : 'backlog drained\n');
  return 0;
}
