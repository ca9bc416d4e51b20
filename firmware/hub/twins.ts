import type { SideChannelBroker } from '../side-channel.js';
import { TwinStore } from '../twin/store.js';
import { MqttTwinSync } from '../twin/mqtt-sync.js';
import { TwinSync } from '../twin/sync.js';
import type { MethodTarget } from './methods.js';
import { DESIRED_SUBSCRIPTION, topic } from './topics.js';

/** The children's twins: stored on disk, synced with the cloud's twins, desired patches delivered to children. */
export interface HubTwins {
  store: TwinStore;
  /** Through the uplink's twin channel (azure); its hook runs on every (re)connect. */
  sync: TwinSync;
  /** Over an mqtt uplink: through the broker's twin topics (side-channel.ts); null for other uplinks. */
  mqtt: MqttTwinSync | null;
}

export interface TwinsOptions {
  gatewayId: string;
  /** The twin store lives here. */
  dataDir: string;
  /** Where desired patches go: a child subscribed to them over the hub. */
  target: MethodTarget;
  /** mqtt uplinks: twins are synced through this broker. */
  broker?: SideChannelBroker;
  onError: (err: Error) => void;
}

export async function startTwins(opts: TwinsOptions): Promise<HubTwins> {
  const { target, onError } = opts;
  const store = await TwinStore.open(opts.dataDir);
  const sync = new TwinSync({
    store, gatewayId: opts.gatewayId, onError,
    deliverDesired: async (id, patch, version) => {
      if (!target.isSubscribed(id, DESIRED_SUBSCRIPTION)) return false;
      const payload = Buffer.from(JSON.stringify({ ...patch, $version: version }));
      return target.deliver(id, topic.desiredPatch(version), payload, 0).then(() => true, () => false);
    },
  });
  const mqtt = opts.broker === undefined ? null : new MqttTwinSync({
    store, gatewayId: opts.gatewayId, broker: opts.broker, onError, deliver: (id) => sync.deliver(id),
  });
  return { store, sync, mqtt };
}
