import type { SideChannelBroker } from '../side-channel.js';
import { TwinStore } from '../twin/store.js';
import { MqttTwinSync } from '../twin/mqtt-sync.js';
import { TwinSync } from '../twin/sync.js';
import { EdgeTwinSync } from '../twin/edge-sync.js';
import type { MethodTarget } from './methods.js';
import { DESIRED_SUBSCRIPTION, topic } from './topics.js';

/** The children's twins: stored on disk, synced with the cloud's twins, desired patches delivered to children. */
export interface HubTwins {
  store: TwinStore;
  /** Through the uplink's twin channel (azure); its hook runs on every (re)connect. */
  sync: TwinSync;
  /** Over an mqtt uplink: through the broker's twin topics (side-channel.ts); null for other uplinks. */
  mqtt: MqttTwinSync | null;
  /** Azure edge mode: each child's twin is its own in IoT Hub, synced on its own connection; null otherwise. */
  edge: EdgeTwinSync | null;
}

export interface TwinsOptions {
  gatewayId: string;
  /** The twin store lives here. */
  dataDir: string;
  /** Where desired patches go: a child subscribed to them over the hub. */
  target: MethodTarget;
  /** mqtt uplinks: twins are synced through this broker. */
  broker?: SideChannelBroker;
  /** Azure edge mode (a device-scope source): the children's own twins, and what their sync asks of the hub. */
  edge?: { isLinkUp: () => boolean; connected: () => string[] };
  onError: (err: Error) => void;
}

export async function startTwins(opts: TwinsOptions): Promise<HubTwins> {
  const { target, onError } = opts;
  const store = await TwinStore.open(opts.dataDir);
  const sync = new TwinSync({
    store,
    gatewayId: opts.gatewayId,
    onError,
    childrenInGatewayTwin: opts.edge === undefined,
    deliverDesired: async (id, patch, version) => {
      if (!target.isSubscribed(id, DESIRED_SUBSCRIPTION)) return false;
      const payload = Buffer.from(JSON.stringify({ ...patch, $version: version }));
      return target.deliver(id, topic.desiredPatch(version), payload, 0).then(
        () => true,
        () => false,
      );
    },
  });
  const mqtt =
    opts.broker === undefined
      ? null
      : new MqttTwinSync({
          store,
          gatewayId: opts.gatewayId,
          broker: opts.broker,
          onError,
          deliver: (id) => sync.deliver(id),
        });
  const edge =
    opts.edge === undefined
      ? null
      : new EdgeTwinSync({
          store,
          gatewayId: opts.gatewayId,
          onError,
          deliver: (id) => sync.deliver(id),
          ...opts.edge,
        });
  return { store, sync, mqtt, edge };
}
