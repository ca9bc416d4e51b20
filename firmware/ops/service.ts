import type { Runtime } from '../runtime.js';
import { formatStatus } from './status-line.js';
import { UPSTREAM_LANE } from '../store/names.js';
import type { PageServer } from '../page/index.js';
import type { Logger } from '../log/logger.js';
import { serveMetrics, type MetricsServer } from './metrics.js';
import { systemdNotifier, type Notifier } from './notify.js';
import { buildReport, IngestRate, RecentErrors, type StatusReport } from './report.js';
import { serveStatus, serverSocketPath, type StatusSocket } from './status-socket.js';

/** How often the ingest rate is sampled, ms: the rate's window is INGEST_SAMPLES_MAX of these. */
export const RATE_SAMPLE_INTERVAL_MS = 1_000;
/** How often the status line goes to the journal and to systemd's STATUS=, ms. */
export const STATUS_LINE_INTERVAL_MS = 5_000;

export interface OpsOptions {
  runtime: Runtime;
  logger: Logger;
  errors: RecentErrors;
  env?: NodeJS.ProcessEnv;
  /** Shown on the technician page; the release's version, else "dev". */
  version?: string;
  /** Where the page's assets are (tests run from sources); default dist/page beside the bundle. */
  pageAssetsDir?: string;
}

/**
 * Everything an operator reaches while the gateway runs: the status socket, the metrics port, the periodic
 * status line, and systemd (READY=1, STATUS=, WATCHDOG=1, STOPPING=1). Started once the runtime is up.
 */
export class Ops {
  private readonly ingest = new IngestRate();
  private readonly startedMonoMs = performance.now();
  private readonly timers: NodeJS.Timeout[] = [];
  private socket: StatusSocket | null = null;
  private metrics: MetricsServer | null = null;
  private page: PageServer | null = null;
  private notifier: Notifier | null = null;

  private constructor(private readonly opts: OpsOptions) {}

  static async start(opts: OpsOptions): Promise<Ops> {
    const ops = new Ops(opts);
    try {
      await ops.open();
    } catch (err) {
      await ops.stopping();
      throw err;
    }
    return ops;
  }

  private async open(): Promise<void> {
    const { runtime, logger, errors } = this.opts;
    const env = this.opts.env ?? process.env;
    this.sample();
    this.socket = await serveStatus(serverSocketPath(runtime.dataDir, env), () => this.report());
    const metricsConfig = runtime.board.metrics;
    if (metricsConfig) this.metrics = await serveMetrics(metricsConfig.port, () => this.report());
    await this.openPage();
    this.notifier = systemdNotifier((err) => {
      errors.add('systemd', err);
      logger.warn({ err }, 'systemd notification failed');
    }, env);
    this.timers.push(setInterval(() => this.sample(), RATE_SAMPLE_INTERVAL_MS));
    this.timers.push(setInterval(() => this.statusLine(), STATUS_LINE_INTERVAL_MS));
    const watchdogMs = this.notifier?.watchdogIntervalMs ?? null;
    // The ping comes from a timer on the event loop, so a loop blocked (or a process wedged) past
    // WatchdogSec stops it and systemd restarts the service.
    if (watchdogMs !== null) this.timers.push(setInterval(() => this.notifier?.send({ WATCHDOG: '1' }), watchdogMs));
    this.notifier?.send({ READY: '1', STATUS: this.systemdStatus() });
  }

  /** Imported only when board.json enables it: a gateway without a page loads none of its code. */
  private async openPage(): Promise<void> {
    const { runtime, logger } = this.opts;
    const config = runtime.board.page;
    if (!config) return;
    const { startPage } = await import('../page/index.js');
    this.page = await startPage({
      config,
      logger,
      assetsDir: this.opts.pageAssetsDir,
      host: {
        gatewayId: runtime.board.identity.gatewayId,
        boardFile: runtime.board.file,
        dataDir: runtime.dataDir,
        hubSection: runtime.board.hub,
        version: this.opts.version ?? 'dev',
        report: () => this.report(),
        devices: () => runtime.status().devices,
        wake: (reason) => runtime.wake(reason),
        invokeDeviceMethod: (id, name, payload) => runtime.invokeDeviceMethod(id, name, payload),
        onDeviceReported: (listener) => runtime.onDeviceReported(listener),
      },
    });
  }

  get pagePort(): number | null {
    return this.page?.port ?? null;
  }

  get socketPath(): string | null {
    return this.socket?.path ?? null;
  }

  get metricsPort(): number | null {
    return this.metrics?.port ?? null;
  }

  report(): StatusReport {
    return buildReport(this.opts.runtime.status(), {
      ingest: this.ingest,
      errors: this.opts.errors,
      ttlSecs: this.opts.runtime.board.storage.ttlSecs,
      startedMonoMs: this.startedMonoMs,
      nowMonoMs: performance.now(),
      metricsPort: this.metricsPort,
      page: this.page ? { port: this.page.port, ...this.page.handler.counters() } : null,
    });
  }

  private sample(): void {
    this.ingest.sample(this.opts.runtime.status(), performance.now());
  }

  private statusLine(): void {
    const status = this.opts.runtime.status();
    const upstream = status.store.lanes.find((l) => l.lane === UPSTREAM_LANE);
    this.opts.logger.info(
      { link: status.link, backlogRecords: upstream?.pendingRecords ?? 0, bytesOnDisk: status.store.bytesOnDisk },
      formatStatus(status),
    );
    this.notifier?.send({ STATUS: this.systemdStatus() });
  }

  /** `systemctl status outpost` shows this line: link state and backlog first, they are what a site call asks. */
  private systemdStatus(): string {
    const r = this.report();
    const records = r.lanes.reduce((n, l) => n + l.records, 0);
    const bytes = r.lanes.reduce((n, l) => n + l.bytes, 0);
    const oldest = Math.max(0, ...r.lanes.map((l) => l.oldestAgeSecs));
    return `link ${r.link}, backlog ${records} rec / ${bytes} B (oldest ${oldest}s), quota ${r.quota.usedPct}%, ${r.children.length} children`;
  }

  /** Tells systemd we are stopping and stops answering; the runtime is stopped by the caller after this. */
  async stopping(): Promise<void> {
    for (const timer of this.timers.splice(0)) clearInterval(timer);
    this.notifier?.send({ STOPPING: '1', STATUS: 'stopping: flushing the log' });
    const socket = this.socket;
    const { metrics, page } = this;
    this.socket = null;
    this.metrics = null;
    this.page = null;
    await Promise.all([socket?.close(), metrics?.close(), page?.close()]);
  }

  /** Waits for the last notification to be delivered before the process exits. */
  async close(): Promise<void> {
    await this.notifier?.flush();
  }
}
