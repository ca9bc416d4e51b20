// `npm run bench -- store`: outpost's ring log against SQLite and LevelDB on one workload, in one run.
// Every engine runs in its own child process and its own fresh directory on the real disk.
import { statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { envInt, freshDir, removeDir, runChild, type BenchModule, type ChildResult } from './harness.js';
import { drainBacklog, fillThenWaitForKill, openThenWaitForKill, outpostLife } from './store-outpost.js';
import { report, type BacklogResult, type EngineName } from './store-report.js';
import type { EngineResult } from './store-workload.js';

const GiB = 1024 * 1024 * 1024;
/** Records per engine (the 1,000,000); OUTPOST_BENCH_RECORDS makes a quick run possible. */
const RECORDS_DEFAULT = 1_000_000;
/** Runs of each engine; medians are reported because the machine is shared and noisy. */
const REPEATS_DEFAULT = 3;
/** Size of the log opened after SIGKILL, bytes (the 1 GiB); OUTPOST_BENCH_FILL_BYTES overrides. */
const FILL_BYTES_DEFAULT = GiB;
/** Opens timed after SIGKILL, each in a fresh process that is itself killed. */
const OPENS_DEFAULT = 5;
/** Records the backlog reader drains while its peak RSS is watched (about 144 MB of the backlog). */
const BACKLOG_DRAIN_RECORDS = 500_000;
const ENGINES: EngineName[] = ['outpost', 'outpost-batch', 'sqlite', 'sqlite-full', 'level'];
/** statfs f_type values (linux/magic.h) for the file systems worth naming. */
const FS_MAGIC: Record<number, string> = {
  0xef53: 'ext2/3/4',
  0x01021994: 'tmpfs',
  0x58465342: 'xfs',
  0x9123683e: 'btrfs',
};

async function child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>> {
  const dir = String(args.dir);
  const records = Number(args.records);
  const bytes = Number(args.bytes);
  switch (role) {
    case 'outpost':
      return outpostLife(dir, records, 'single');
    case 'outpost-batch':
      return outpostLife(dir, records, 'batch');
    // The peers load native libraries (SQLite, LevelDB): imported only by their own children, so
    // outpost's child RSS does not carry them.
    case 'sqlite':
      return (await import('./store-peers.js')).sqliteLife(dir, records, 'NORMAL');
    case 'sqlite-full':
      return (await import('./store-peers.js')).sqliteLife(dir, records, 'FULL');
    case 'level':
      return (await import('./store-peers.js')).levelLife(dir, records);
    case 'fill':
      return fillThenWaitForKill(dir, bytes);
    case 'open':
      return openThenWaitForKill(dir, bytes);
    case 'reader':
      return drainBacklog(dir, bytes, records);
    default:
      throw new Error(`store bench has no child role "${role}"`);
  }
}

/** Runs one engine's life in a child, in a fresh directory removed afterwards. */
async function runEngine(engine: EngineName, records: number): Promise<EngineResult> {
  const dir = await freshDir(engine);
  try {
    return (await runChild('store', engine, { dir, records })) as unknown as EngineResult;
  } finally {
    await removeDir(dir);
  }
}

/** A child that reports once and is then SIGKILLed by us. */
function runUntilKilled(role: string, args: Record<string, unknown>, doneKey: string): Promise<ChildResult> {
  return runChild('store', role, args, {
    expectKill: true,
    onMessage: (msg, proc) => {
      if (msg[doneKey] === true) proc.kill('SIGKILL');
    },
  });
}

/** Fill ≥ 1 GiB, SIGKILL the writer, time opens after SIGKILL, then drain part of it watching RSS. */
async function crashBacklog(bytes: number, opens: number): Promise<BacklogResult> {
  const dir = await freshDir('backlog');
  try {
    const fill = await runUntilKilled('fill', { dir, bytes }, 'filled');
    console.log(
      `store: filled ${fill.bytesOnDisk} bytes in ${Number(fill.fillMs).toFixed(0)} ms, SIGKILLed the writer`,
    );
    const opened: ChildResult[] = [];
    for (let i = 0; i < opens; i++) opened.push(await runUntilKilled('open', { dir, bytes }, 'opened'));
    console.log(`store: opens after SIGKILL (ms): ${opened.map((o) => Number(o.openMs).toFixed(1)).join(', ')}`);
    const reader = await runChild('store', 'reader', { dir, bytes, records: BACKLOG_DRAIN_RECORDS });
    return { fill, opened, reader };
  } finally {
    await removeDir(dir);
  }
}

function fsTypeOfTmp(): string {
  const type = statfsSync(tmpdir()).type;
  return FS_MAGIC[type] ?? `unknown (0x${type.toString(16)})`;
}

async function run(): Promise<void> {
  const records = envInt('OUTPOST_BENCH_RECORDS', RECORDS_DEFAULT);
  const repeats = envInt('OUTPOST_BENCH_REPEATS', REPEATS_DEFAULT);
  const fillBytes = envInt('OUTPOST_BENCH_FILL_BYTES', FILL_BYTES_DEFAULT);
  const opens = envInt('OUTPOST_BENCH_OPENS', OPENS_DEFAULT);
  const fsType = fsTypeOfTmp();
  if (fsType === 'tmpfs')
    console.log(`store: WARNING ${tmpdir()} is tmpfs: fsync costs nothing there, figures mean little`);
  console.log(
    `store: ${records} records x ${repeats} runs per engine in ${tmpdir()} (${fsType}), backlog ${fillBytes} bytes`,
  );
  const results = Object.fromEntries(ENGINES.map((e) => [e, []])) as unknown as Record<EngineName, EngineResult[]>;
  // Engines take turns within each repeat, so a noisy minute on the shared machine hits all of them.
  for (let r = 1; r <= repeats; r++) {
    for (const engine of ENGINES) {
      const res = await runEngine(engine, records);
      results[engine].push(res);
      console.log(
        `store: ${engine} run ${r}/${repeats}: append ${res.appendPerSec.toFixed(0)}/s, ` +
          `drain ${res.drainPerSec.toFixed(0)}/s, ` +
          `${res.bytesPerRecord.toFixed(0)} B/record, peak RSS ${res.rssMb.toFixed(1)} MB`,
      );
    }
  }
  const backlog = await crashBacklog(fillBytes, opens);
  report({ records, repeats, fillBytes, fsType, results, backlog });
}

const store: BenchModule = { run, child };
export default store;
