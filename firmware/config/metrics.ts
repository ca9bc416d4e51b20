import type { ConfigNode } from './node.js';
import { fieldsOf, integerOption } from './schema.js';

/**
 * board.json's optional `metrics` section: `{ "port": 9464 }` serves Prometheus text on 127.0.0.1:9464/metrics.
 * Missing or `false`: no metrics server. Port 0 picks a free port (tests, a second gateway on one machine).
 */
export interface MetricsConfig {
  /** TCP port on the loopback interface. 9464 is the port registered for Prometheus exporters of this kind. */
  port: number;
}

/** The OpenTelemetry Prometheus exporter's default port, so an agent configured for that scrapes us as is. */
export const METRICS_PORT_DEFAULT = 9464;

export function parseMetrics(node: ConfigNode): MetricsConfig | null {
  if (node.missing || node.value === false) return null;
  node.keys(fieldsOf('metrics'));
  return { port: integerOption(node.field('port'), 'metrics.port') };
}
