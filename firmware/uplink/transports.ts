import { createAzureTransport, type AzureTransportOptions } from './azure.js';
import { createMqttTransport, type MqttTransportOptions } from './mqtt.js';
import { UplinkError, type UplinkTransport } from './types.js';

/** A transport's options with file contents loaded (see config.ts for the board.json section it comes from). */
export type TransportConfig =
  ({ protocol: 'mqtt' } & MqttTransportOptions) | ({ protocol: 'azure' } & AzureTransportOptions);

/** Transports by protocol name, looked up once at start-up (MQTT.js's protocol table). */
const TRANSPORTS: {
  [P in TransportConfig['protocol']]: (config: Extract<TransportConfig, { protocol: P }>) => UplinkTransport;
} = {
  mqtt: createMqttTransport,
  azure: createAzureTransport,
};

export function createTransport(config: TransportConfig): UplinkTransport {
  const factory = TRANSPORTS[config.protocol] as ((config: TransportConfig) => UplinkTransport) | undefined;
  if (factory === undefined) {
    const known = Object.keys(TRANSPORTS).join(', ');
    throw new UplinkError(
      'INVALID',
      `"protocol" must be one of ${known}, got ${JSON.stringify((config as { protocol: unknown }).protocol)}`,
    );
  }
  return factory(config);
}
