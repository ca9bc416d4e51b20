import type { Client } from 'aedes';
import type { PublishThrottle } from './throttle.js';
import type { Inbound } from './topics.js';

/** What the hub's owner is told about its children (HubServer's handlers). */
export interface ServerHandlers {
  /** Must resolve only when the publish has been dealt with (telemetry: durable); then it is PUBACKed. */
  onPublish(deviceId: string, inbound: Inbound, payload: Buffer): Promise<void>;
  onConnected(deviceId: string): void;
  onDisconnected(deviceId: string): void;
  onSubscribed(deviceId: string, filter: string): void;
}

/** One connected child: its aedes client, publishes in flight, its throttle, its filters and its pending PUBACKs. */
export interface ClientState {
  client: Client;
  inflight: number;
  throttle: PublishThrottle;
  subscriptions: Set<string>;
  acks: Map<number, { resolve: () => void; reject: (err: Error) => void }>;
}
