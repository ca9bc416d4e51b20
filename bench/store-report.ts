// The store benchmark's printout: engine table, crash/backlog table, targets, then one JSON line last.
import { fmt, formatTable, median, type ChildResult } from './harness.js';
import { APPEND_BATCH_CALLS_IN_FLIGHT, type EngineResult } from './store-workload.js';

export type EngineName = 'outpost' | 'outpost-batch' | 'sqlite' | 'sqlite-full' | 'level';

export interface BacklogResult {
  fill: ChildResult;
  opened: ChildResult[];
  reader: ChildResult;
}

export interface ReportInput {
  records: number;
  repeats: number;
  fillBytes: number;
  fsType: string;
  results: Record<EngineName, EngineResult[]>;
  backlog: BacklogResult;
}

const ENGINE_LABELS: Record<EngineName, string> = {
  outpost: 'outpost ring log (append(), group commit)',
  'outpost-batch': 'outpost ring log (appendBatch 500, group commit)',
  sqlite: 'better-sqlite3 (WAL, synchronous=NORMAL: commits not synced, tx 500)',
  'sqlite-full': 'better-sqlite3 (WAL, synchronous=FULL: each commit synced, tx 500)',
  level: `classic-level (batch 500, sync: true, ${APPEND_BATCH_CALLS_IN_FLIGHT} batches in flight)`,
};

/** The targets: ratios from one run, bytes per 256-B record, open ms and RSS MB. */
const TARGETS = {
  appendVsSqlite: 2,
  appendVsLevel: 8,
  drainVsSqlite: 3,
  bytesPerRecordMax: 300,
  openMs1GiBMax: 500,
  rssMbMax: 80,
};

function spread(values: number[]): string {
  return `${fmt(Math.min(...values))}–${fmt(Math.max(...values))}`;
}

/** The median of one field over an engine's runs. */
type Med = (engine: EngineName, key: keyof EngineResult) => number;

export function report(input: ReportInput): void {
  const { results, backlog } = input;
  const med: Med = (engine, key) => median(results[engine].map((r) => r[key]));
  const engines = Object.keys(results) as EngineName[];
  printEngines(input, med, engines);
  const { openMs, openMedian, backlogRss } = printBacklog(backlog);
  // Headline ratios use appendBatch(500): the same 500-record unit the peers get (SQLite transactions,
  // LevelDB batches). The one-promise-per-record append() figures are printed beside them.
  const summary = {
    appendVsSqlite: med('outpost-batch', 'appendPerSec') / med('sqlite', 'appendPerSec'),
    appendVsSqliteFull: med('outpost-batch', 'appendPerSec') / med('sqlite-full', 'appendPerSec'),
    appendVsLevel: med('outpost-batch', 'appendPerSec') / med('level', 'appendPerSec'),
    drainVsSqlite: med('outpost-batch', 'drainPerSec') / med('sqlite', 'drainPerSec'),
    bytesPerRecord: med('outpost-batch', 'bytesPerRecord'),
    openMs1GiB: openMedian,
    rssMb: backlogRss,
  };
  const rows = targetRows(summary);
  console.log(
    `durable append vs SQLite (FULL, each commit synced): ${fmt(summary.appendVsSqliteFull, 2)}× ` +
      '(no target: shown for the durable-vs-durable ratio)',
  );
  console.log('\nTargets (issue 2)');
  console.log(
    formatTable(
      ['target', 'measured', 'goal', 'result'],
      rows.map(([label, v, goal, pass, digits]) => [label, fmt(v, digits), goal, pass ? 'PASS' : 'MISS']),
    ),
  );
  printJson(input, med, engines, { summary, rows, openMsFirst: openMs[0] ?? NaN });
}

function printEngines(input: ReportInput, med: Med, engines: EngineName[]): void {
  const { results } = input;
  console.log(
    `\nStore benchmark: ${fmt(input.records)} records of 256 B, ` +
      `medians of ${input.repeats} runs per engine (${input.fsType})`,
  );
  console.log(
    formatTable(
      [
        'engine',
        'append rec/s',
        '(range)',
        'drain rec/s',
        '(range)',
        'disk B/record',
        'peak RSS MB',
        'append CPU µs/rec',
        'drain CPU µs/rec',
        'retire ms',
      ],
      engines.map((e) => [
        ENGINE_LABELS[e],
        fmt(med(e, 'appendPerSec')),
        spread(results[e].map((r) => r.appendPerSec)),
        fmt(med(e, 'drainPerSec')),
        spread(results[e].map((r) => r.drainPerSec)),
        fmt(med(e, 'bytesPerRecord'), 1),
        fmt(med(e, 'rssMb'), 1),
        fmt(med(e, 'appendCpuUsPerRecord'), 2),
        fmt(med(e, 'drainCpuUsPerRecord'), 2),
        fmt(med(e, 'retireMs')),
      ]),
    ),
  );
  const syncs = med('outpost', 'appendSyncs');
  console.log(
    `outpost group commit: ${fmt(syncs)} syncs during append, ${fmt(med('outpost', 'recordsPerSync'))} records/sync; ` +
      `write_bytes ${fmt(med('outpost', 'writeBytes'))} (cancelled ${fmt(med('outpost', 'cancelledWriteBytes'))}); ` +
      `V8 heap max ${fmt(med('outpost', 'heapTotalMbMax'), 1)} MB, ` +
      `Buffers max ${fmt(med('outpost', 'arrayBuffersMbMax'), 1)} MB`,
  );
  console.log(
    'CPU µs/rec is user + system time of the whole engine process per record: ' +
      'steadier than rates on a shared machine.',
  );
}

/** The backlog table; the open times and the peak RSS feed the targets. */
function printBacklog(backlog: BacklogResult): { openMs: number[]; openMedian: number; backlogRss: number } {
  const openMs = backlog.opened.map((o) => Number(o.openMs));
  const openMedian = median(openMs);
  const backlogRss = Math.max(
    Number(backlog.fill.rssMb),
    Number(backlog.reader.rssMb),
    ...backlog.opened.map((o) => Number(o.rssMb)),
  );
  console.log(`\nBacklog after SIGKILL (outpost, ${fmt(Number(backlog.fill.bytesOnDisk) / 2 ** 20)} MiB on disk)`);
  console.log(
    formatTable(
      ['phase', 'figure'],
      [
        [
          'fill (syncMode none), records',
          `${fmt(Number(backlog.fill.records))} in ${fmt(Number(backlog.fill.fillMs))} ms`,
        ],
        ['segments at SIGKILL', fmt(Number(backlog.fill.segments))],
        ['open + lane, first after SIGKILL, ms', fmt(openMs[0] ?? NaN, 1)],
        [`open + lane, median of ${openMs.length} (each after SIGKILL), ms`, fmt(openMedian, 1)],
        ['damage reports at first open', fmt(Number(backlog.opened[0]?.damaged ?? NaN))],
        ['pending records seen at open', fmt(Number(backlog.opened[0]?.pendingRecords ?? NaN))],
        [
          'peak RSS: filler / opener / reader, MB',
          [backlog.fill.rssMb, backlog.opened[0]?.rssMb, backlog.reader.rssMb]
            .map((v) => fmt(Number(v), 1))
            .join(' / '),
        ],
        [
          'reader V8 heap max / Buffers max, MB',
          `${fmt(Number(backlog.reader.heapTotalMbMax), 1)} / ${fmt(Number(backlog.reader.arrayBuffersMbMax), 1)}`,
        ],
        [
          'reader drained (with acks), records',
          `${fmt(Number(backlog.reader.drained))} at ${fmt(Number(backlog.reader.drainPerSec))}/s`,
        ],
      ],
    ),
  );
  return { openMs, openMedian, backlogRss };
}

interface Summary {
  appendVsSqlite: number;
  appendVsSqliteFull: number;
  appendVsLevel: number;
  drainVsSqlite: number;
  bytesPerRecord: number;
  openMs1GiB: number;
  rssMb: number;
}

/** label, measured, goal, pass, digits */
type TargetRow = [string, number, string, boolean, number];

function targetRows(summary: Summary): TargetRow[] {
  return [
    [
      'append vs SQLite (NORMAL: its commits not durable)',
      summary.appendVsSqlite,
      `≥ ${TARGETS.appendVsSqlite}×`,
      summary.appendVsSqlite >= TARGETS.appendVsSqlite,
      2,
    ],
    [
      'durable append vs LevelDB',
      summary.appendVsLevel,
      `≥ ${TARGETS.appendVsLevel}×`,
      summary.appendVsLevel >= TARGETS.appendVsLevel,
      2,
    ],
    [
      'drain vs SQLite',
      summary.drainVsSqlite,
      `≥ ${TARGETS.drainVsSqlite}×`,
      summary.drainVsSqlite >= TARGETS.drainVsSqlite,
      2,
    ],
    [
      'disk bytes written per 256-B record',
      summary.bytesPerRecord,
      `≤ ${TARGETS.bytesPerRecordMax}`,
      summary.bytesPerRecord <= TARGETS.bytesPerRecordMax,
      1,
    ],
    [
      'open 1 GiB log after SIGKILL, ms',
      summary.openMs1GiB,
      `≤ ${TARGETS.openMs1GiBMax}`,
      summary.openMs1GiB <= TARGETS.openMs1GiBMax,
      1,
    ],
    ['peak RSS with 1 GiB backlog, MB', summary.rssMb, `≤ ${TARGETS.rssMbMax}`, summary.rssMb <= TARGETS.rssMbMax, 1],
  ];
}

function printJson(
  input: ReportInput,
  med: Med,
  engines: EngineName[],
  { summary, rows, openMsFirst }: { summary: Summary; rows: TargetRow[]; openMsFirst: number },
): void {
  const { backlog } = input;
  const round = (v: number, digits = 2): number => Number(v.toFixed(digits));
  const json: Record<string, number | string> = {};
  for (const [key, value] of Object.entries(summary)) json[key] = round(value);
  for (const e of engines) {
    json[`${e}AppendPerSec`] = Math.round(med(e, 'appendPerSec'));
    json[`${e}DrainPerSec`] = Math.round(med(e, 'drainPerSec'));
    json[`${e}BytesPerRecord`] = round(med(e, 'bytesPerRecord'), 1);
    json[`${e}RssMb`] = round(med(e, 'rssMb'), 1);
    json[`${e}AppendCpuUsPerRecord`] = round(med(e, 'appendCpuUsPerRecord'));
  }
  json.appendSingleVsSqlite = round(med('outpost', 'appendPerSec') / med('sqlite', 'appendPerSec'));
  json.appendSingleVsLevel = round(med('outpost', 'appendPerSec') / med('level', 'appendPerSec'));
  json.appendCpuVsSqlite = round(med('sqlite', 'appendCpuUsPerRecord') / med('outpost', 'appendCpuUsPerRecord'));
  json.drainCpuVsSqlite = round(med('sqlite', 'drainCpuUsPerRecord') / med('outpost', 'drainCpuUsPerRecord'));
  json.outpostRecordsPerSync = round(med('outpost', 'recordsPerSync'), 0);
  json.openMsFirst = round(openMsFirst, 1);
  json.records = input.records;
  json.repeats = input.repeats;
  json.backlogBytes = Number(backlog.fill.bytesOnDisk);
  json.misses = rows.filter((r) => !r[3]).length;
  console.log(JSON.stringify(json));
}
