import mqtt, { type MqttClient } from 'mqtt';
import { sideChannelOptions, type SideChannelBroker } from '../side-channel.js';

/**
 * Over an mqtt uplink the scope document is a retained message: this stays subscribed to it while the
 * uplink is up, so a revocation published by the cloud reaches the identity cache within a round trip
 * instead of at the next hourly read. mqtt.js reconnects the subscription by itself if it drops while
 * the uplink stays up, and the broker sends the retained document again on each resubscribe.
 */

/** A dropped follower connection is opened again after this, ms (mqtt.js's reconnectPeriod). */
const FOLLOW_RECONNECT_MS = 2_000;
/** The follower's connect, bounded: the uplink to the same broker has just connected, so it is reachable, ms. */
const FOLLOW_CONNECT_TIMEOUT_MS = 5_000;

export class ScopeFollower {
  private client: MqttClient | null = null;

  constructor(
    private readonly broker: SideChannelBroker,
    private readonly topic: string,
    /** Every message on the topic, retained or live; an empty payload clears it and is passed on too. */
    private readonly onDocument: (payload: Buffer) => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {}

  get following(): boolean {
    return this.client?.connected ?? false;
  }

  /**
   * Connects and subscribes; resolves on the first SUBACK. The retained document follows it in the same round
   * trip and is applied when it arrives rather than waited for: a broker with no document sends nothing,
   * and the drain must not wait out a timeout for it. A first connect that fails rejects (the resync reports
   * it) but the client keeps reconnecting and subscribes on every connect until stop(): a gateway slow to start
   * (its CONNACK wait timed out) would otherwise have no children until the next hourly read.
   */
  async start(): Promise<void> {
    await this.stop();
    const timing = { reconnectPeriodMs: FOLLOW_RECONNECT_MS, connectTimeoutMs: FOLLOW_CONNECT_TIMEOUT_MS };
    const client = mqtt.connect(this.broker.url, { ...sideChannelOptions(this.broker, timing), resubscribe: false });
    this.client = client;
    client.on('message', (topic, payload) => {
      if (topic === this.topic) void this.onDocument(payload).catch((err: Error) => this.onError(err));
    });
    const firstSubscribe = new Promise<void>((resolve, reject) => {
      client.on('connect', () => {
        client.subscribeAsync(this.topic, { qos: 1 }).then(
          () => resolve(),
          (err: Error) => {
            this.onError(err);
            reject(err);
          },
        );
      });
      client.on('error', (err) => {
        this.onError(err);
        reject(err);
      });
    });
    await firstSubscribe;
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.endAsync(true).catch(() => {});
  }
}
