import type { TransportConfig } from './transports.js';
import { UplinkError, type UplinkTransport } from './types.js';

/**
 * transports.ts's protocol table with each transport loaded only when board.json chooses it: the Azure SDK
 * on top of mqtt.js adds about 14 MB of resident memory (measured with Node 20: 51 → 65 MB), which a
 * gateway speaking plain MQTT should not pay (the Pi Zero 2 W has 512 MB for everything). transports.ts
 * stays for callers that hold both SDKs anyway (tests, the hub).
 */
export async function loadTransport(config: TransportConfig): Promise<UplinkTransport> {
  if (config.protocol === 'mqtt') return (await import('./mqtt.js')).createMqttTransport(config);
  if (config.protocol === 'azure') return (await import('./azure.js')).createAzureTransport(config);
  throw new UplinkError(
    'INVALID',
    `"protocol" must be one of mqtt, azure, got ${JSON.stringify((config as { protocol: unknown }).protocol)}`,
  );
}
