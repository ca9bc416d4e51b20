import { createAzureTransport, type AzureTransportOptions } from './azure.js';
import { createMqttTransport, type MqttTransportOptions } from './mqtt.js';
import { UplinkError, type UplinkTransport } from './types.js';

/** board.json's `uplink` section: the protocol picks the transport, the rest are its options. */
export type UplinkConfig = ({ protocol: 'mqtt' } & MqttTransportOptions) | ({ protocol: 'azure' } & AzureTransportOptions);

/** Transports by protocol name, looked up once at start-up (MQTT.js's protocol table). */
const TRANSPORTS: { [P in UplinkConfig['protocol']]: (config: Extract<UplinkConfig, { protocol: P }>) => UplinkTransport } = {
  mqtt: createMqttTransport,
  azure: createAzureTransport,
};

export function createTransport(config: UplinkConfig): UplinkTransport {
  const factory = TRANSPORTS[config.protocol] as ((config: UplinkConfig) => UplinkTransport) | undefined;
  if (factory === undefined) {
    const known = Object.keys(TRANSPORTS).join(', ');
    throw new UplinkError('INVALID', `"protocol" must be one of ${known}, got ${JSON.stringify((config as { protocol: unknown }).protocol)}`);
  }
  return factory(config);
}
