import type { ConfigNode } from './node.js';

/**
 * board.json's optional `metrics` section: `{ "port": 9464 }` serves Prometheus text on 127.0.0.1:9464/metrics.
 * Missing or `false`: no metrics server. Port 0 picks a free port (tests, a second gateway on one machine).
 */
export interface MetricsConfig {
  /** TCP port on the loopback interface. 9464 is the port registered for Prometheus exporters of this kind. */
  port: number;
}

export const METRICS_PORT_DEFAULT = 9464;

export function parseMetrics(node: ConfigNode): MetricsConfig | null {
  if (node.missing || node.value === false) return null;
  node.keys(['port']);
  return { port: node.field('port').integer({ min: 0, max: 65_535, default: METRICS_PORT_DEFAULT, unit: 'TCP port on 127.0.0.1' }) };
}
