import type { DeviceStatus, MethodResult, ReportedListener } from '../../drivers/index.js';

/**
 * What the page itself reads of the status report (ops/report.ts's StatusReport, which the page is handed):
 * the chart's samples and the link's state. The whole report goes to the browser as it is.
 */
export interface PageReport {
  link: string;
  lanes: ReadonlyArray<{ records: number; bytes: number }>;
  drain: { ratePerSec: number };
}

/** What the page reads and does on the running gateway; firmware/ops/service.ts builds it from the runtime. */
export interface PageHost {
  gatewayId: string;
  /** Absolute path of board.json: the board check and the diagnostics bundle read it. */
  boardFile: string;
  dataDir: string;
  /** board.json's hub section: its TLS certificate, when it has one, serves the page too. */
  hubSection: unknown;
  version: string;
  report(): PageReport;
  devices(): DeviceStatus[];
  /** What SIGUSR2 does: connect now instead of sleeping out the backoff. */
  wake(reason: string): void;
  invokeDeviceMethod(deviceId: string, name: string, payload: unknown): Promise<MethodResult>;
  onDeviceReported(listener: ReportedListener): () => void;
}
