import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The flag that turns the bench entry point into a worker for one engine or phase. */
export const CHILD_FLAG = '--bench-child';
/** A child that has not reported after this long is killed: a hung engine must not hang the run. */
const CHILD_TIMEOUT_MS = 30 * 60 * 1000;

/** What a benchmark module offers the entry point. */
export interface BenchModule {
  /** Runs the whole benchmark in the parent: spawns children, prints the table and the JSON line. */
  run(): Promise<void>;
  /** Runs one role in a child process; the returned object is sent to the parent. */
  child(role: string, args: Record<string, unknown>): Promise<Record<string, unknown>>;
}

export type ChildResult = Record<string, number | string | boolean>;

/** Counters from /proc/self/io; write_bytes counts pages this process dirtied or wrote directly. */
export function ioCounters(): { writeBytes: number; cancelledWriteBytes: number } {
  const text = readFileSync('/proc/self/io', 'utf8');
  const field = (name: string): number => Number(new RegExp(`^${name}: (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { writeBytes: field('write_bytes'), cancelledWriteBytes: field('cancelled_write_bytes') };
}

export interface ProcessCounters {
  peakRssMb: number;
  writeBytes: number;
  cancelledWriteBytes: number;
}

/**
 * Another process's peak RSS (VmHWM, MiB) and disk counters (/proc/<pid>/io), or null once it is gone: a
 * caller that kills the process reads them just before.
 */
export function processCounters(pid: number): ProcessCounters | null {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const io = readFileSync(`/proc/${pid}/io`, 'utf8');
    const field = (text: string, re: RegExp): number => Number(re.exec(text)?.[1] ?? NaN);
    return {
      peakRssMb: field(status, /^VmHWM:\s+(\d+) kB$/m) / 1024,
      writeBytes: field(io, /^write_bytes: (\d+)$/m),
      cancelledWriteBytes: field(io, /^cancelled_write_bytes: (\d+)$/m),
    };
  } catch {
    return null;
  }
}

/** Peak resident set size of this process so far, MiB (maxRSS is reported in KiB). */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/** How often the memory sampler looks, ms: often enough to catch the young generation at its fullest. */
const MEMORY_SAMPLE_MS = 50;

/**
 * Samples the heap and off-heap buffers while a phase runs, so a peak RSS can be split into V8 heap
 * (young + old generation) and Buffer memory. Returns a function that stops sampling and gives the maxima.
 */
export function sampleMemory(): () => { heapTotalMbMax: number; arrayBuffersMbMax: number } {
  const max = { heapTotalMbMax: 0, arrayBuffersMbMax: 0 };
  const look = (): void => {
    const m = process.memoryUsage();
    max.heapTotalMbMax = Math.max(max.heapTotalMbMax, m.heapTotal / 2 ** 20);
    max.arrayBuffersMbMax = Math.max(max.arrayBuffersMbMax, m.arrayBuffers / 2 ** 20);
  };
  const timer = setInterval(look, MEMORY_SAMPLE_MS);
  return () => {
    clearInterval(timer);
    look();
    return max;
  };
}

export function median(values: number[]): number {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** A fresh directory on the real disk; os.tmpdir() is checked to be ext4 rather than tmpfs by the caller. */
export function freshDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `outpost-bench-${label}-`));
}

export function removeDir(dir: string): Promise<void> {
  return rm(dir, { recursive: true, force: true });
}

/** Positive integer from the environment, or the default; a bad value is an operator error. */
export function envInt(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw.replace(/_/g, ''));
  if (!Number.isInteger(value) || value <= 0) throw new TypeError(`"${name}" must be a positive integer, got ${raw}`);
  return value;
}

export interface ChildOptions {
  /** Called with each message before the final result; lets the parent act mid-run (e.g. SIGKILL it). */
  onMessage?: (msg: ChildResult, child: ChildProcess) => void;
  /** The child is expected to die by a signal; resolve with the last message instead of failing. */
  expectKill?: boolean;
}

/**
 * Runs `role` of benchmark `name` in its own Node process (same bundle, same flags), so that peak RSS
 * and /proc/self/io belong to one engine only. OUTPOST_BENCH_CPU_PROF=<dir> profiles every child.
 */
export function runChild(
  name: string,
  role: string,
  args: Record<string, unknown>,
  options: ChildOptions = {},
): Promise<ChildResult> {
  const profDir = process.env.OUTPOST_BENCH_CPU_PROF;
  const execArgv = [
    ...process.execArgv,
    ...(profDir
      ? ['--cpu-prof', `--cpu-prof-dir=${profDir}`, `--cpu-prof-name=${name}-${role}-${Date.now()}.cpuprofile`]
      : []),
  ];
  const child = fork(process.argv[1]!, [CHILD_FLAG, name, role, JSON.stringify(args)], { execArgv, stdio: 'inherit' });
  return new Promise((resolve, reject) => {
    let last: ChildResult | null = null;
    let failure: string | null = null;
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.on('message', (raw) => {
      const msg = raw as ChildResult & { error?: string; final?: boolean };
      if (typeof msg.error === 'string') {
        failure = msg.error;
        return;
      }
      last = msg;
      if (!msg.final) options.onMessage?.(msg, child);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (failure) reject(new Error(`bench child ${name}/${role} failed: ${failure}`));
      else if (last && (code === 0 || (options.expectKill && signal === 'SIGKILL'))) resolve(last);
      else reject(new Error(`bench child ${name}/${role} exited with ${signal ?? `code ${code}`} and no result`));
    });
  });
}

/** Child side: runs the role, reports its result (or its error) to the parent, then exits. */
export async function serveChild(modules: Record<string, () => Promise<BenchModule>>, argv: string[]): Promise<void> {
  const [name, role, rawArgs] = argv;
  try {
    const load = modules[name ?? ''];
    if (!load) throw new Error(`unknown benchmark "${name}"`);
    const result = await (await load()).child(role ?? '', JSON.parse(rawArgs ?? '{}') as Record<string, unknown>);
    await send({ ...result, final: true });
    process.exit(0);
  } catch (err) {
    await send({ error: err instanceof Error ? (err.stack ?? err.message) : String(err) });
    process.exit(1);
  }
}

/** Sends a message to the parent and waits until it has left this process. */
export function send(msg: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => {
    if (!process.send) return reject(new Error('not started as a bench child (no IPC channel)'));
    process.send(msg, undefined, {}, (err) => (err ? reject(err) : resolve()));
  });
}

/** A plain-text table: first column left-aligned, the rest right-aligned. */
export function formatTable(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return 'n/a';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
