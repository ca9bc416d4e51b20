import path from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { startHub, type HubService } from '../../firmware/hub/index.js';
import { RingLog } from '../../firmware/store/log.js';
import { publishScope } from '../../firmware/ops/scope-cli.js';
import { AedesBroker } from './brokers.js';
import { HUB_HOST, newKey, sasPassword, scopeDocument } from './hub-fixture.js';
import { tempDir } from './tmp.js';

/** A hub on a real store with `childCount` SAS children (child-0 ...) sharing one key, for the hostile-client tests. */

export interface HostileHub {
  hub: HubService;
  log: RingLog;
  port: number;
  key: string;
  /** Errors the hub reported (refusal summaries among them). */
  errors: Error[];
}

export interface HostileHubOptions {
  hub?: Record<string, unknown>;
  childCount?: number;
}

export async function hostileHub(
  t: { teardown(fn: () => unknown): void },
  opts: HostileHubOptions = {},
): Promise<HostileHub> {
  const dir = tempDir(t, 'outpost-hostile-');
  const key = newKey();
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const children = Array.from({ length: opts.childCount ?? 4 }, (_, i) => ({ deviceId: `child-${i}`, key }));
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, children));
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const errors: Error[] = [];
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false, ...opts.hub } },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
    onError: (err) => errors.push(err),
  });
  t.teardown(() => hub.stop());
  await hub.refreshIdentities();
  return { hub, log, port: hub.status().ports.tcp!, key, errors };
}

/** mqtt.js connect options for child `deviceId` of a hostile hub. */
export function childOptions(h: HostileHub, deviceId: string, localAddress?: string): mqtt.IClientOptions {
  return {
    clientId: deviceId,
    username: `${HUB_HOST}/${deviceId}/?api-version=2021-04-12`,
    password: sasPassword(deviceId, h.key),
    protocolVersion: 4,
    reconnectPeriod: 0,
    connectTimeout: 10_000,
    ...(localAddress === undefined ? {} : { localAddress }),
  };
}

export function connectChild(h: HostileHub, deviceId: string, localAddress?: string): Promise<MqttClient> {
  return mqtt.connectAsync(`mqtt://127.0.0.1:${h.port}`, childOptions(h, deviceId, localAddress));
}

/**
 * Publishes and reports which came first: the hub acknowledging it ('acked': PUBACK, or PUBREC for QoS 2)
 * or closing the connection ('closed'). Either ends the wait, so a hub that wrongly accepts fails at once.
 */
export function publishOutcome(
  client: MqttClient,
  topic: string,
  payload: string,
  qos: 1 | 2,
): Promise<'acked' | 'closed'> {
  return new Promise((resolve) => {
    const settle = (outcome: 'acked' | 'closed') => {
      client.off('close', onClose).off('packetreceive', onPacket);
      resolve(outcome);
    };
    const onClose = () => settle('closed');
    const onPacket = (packet: { cmd: string }) => {
      if (packet.cmd === 'puback' || packet.cmd === 'pubrec') settle('acked');
    };
    client.on('close', onClose).on('packetreceive', onPacket);
    client.publish(topic, payload, { qos });
  });
}
