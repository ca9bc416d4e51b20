import mqtt, { type MqttClient } from 'mqtt';
import type { ScopeBrokerOptions } from './scope-sync.js';

/**
 * Over an mqtt uplink the scope document is a retained message: this stays subscribed to it while the
 * uplink is up, so a revocation published by the cloud reaches the identity cache within a round trip
 * instead of at the next hourly read. mqtt.js reconnects the subscription by itself if it drops while
 * the uplink stays up, and the broker sends the retained document again on each resubscribe.
 */

/** A dropped follower connection is opened again after this, ms (mqtt.js's reconnectPeriod). */
const FOLLOW_RECONNECT_MS = 2_000;

export class ScopeFollower {
  private client: MqttClient | null = null;

  constructor(
    private readonly broker: ScopeBrokerOptions,
    private readonly topic: string,
    /** Every message on the topic, retained or live; an empty payload clears it and is passed on too. */
    private readonly onDocument: (payload: Buffer) => Promise<void>,
    private readonly onError: (err: Error) => void,
  ) {}

  get following(): boolean {
    return this.client?.connected ?? false;
  }

  /** Connects and subscribes; resolves once the retained document is applied, or after `waitMs` if there is none. */
  async start(waitMs: number): Promise<void> {
    await this.stop();
    const b = this.broker;
    const client = await mqtt.connectAsync(b.url, {
      ca: b.ca, cert: b.cert, key: b.key, username: b.username, password: b.password,
      clean: true, reconnectPeriod: FOLLOW_RECONNECT_MS, connectTimeout: waitMs, writeCache: false,
    });
    this.client = client;
    client.on('error', (err) => this.onError(err));
    let timer: NodeJS.Timeout | undefined;
    const first = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, waitMs);
      client.on('message', (topic, payload, packet) => {
        if (topic !== this.topic) return;
        const applied = this.onDocument(payload).catch((err: Error) => this.onError(err));
        if (packet.retain) void applied.then(resolve);
      });
    });
    try {
      await client.subscribeAsync(this.topic, { qos: 1 });
      await first;
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  async stop(): Promise<void> {
    const client = this.client;
    this.client = null;
    await client?.endAsync(true).catch(() => {});
  }
}
