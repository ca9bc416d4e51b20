import mqtt, { type MqttClient } from 'mqtt';
import { splitConnectionId } from '../auth/identity.js';
import {
  sideChannelOptions,
  type SideChannelBroker,
  twinDesiredFilters,
  twinTopic,
  twinTopicPrefix,
} from '../side-channel.js';
import type { UplinkTransport } from '../uplink/types.js';
import { LivePush } from './live-push.js';
import { TWIN_SECTION_BYTES_MAX } from './merge.js';
import { isJsonObject } from '../json.js';
import type { TwinStore } from './store.js';

/**
 * Twins over an mqtt uplink, which has no twin service of its own. Topics on the uplink's broker:
 *
 *   outpost/{gatewayId}/twin/{deviceId}/reported   gateway → cloud, QoS 1, not retained: one reported patch
 *                                                  (JSON merge patch, null deletes) per child with changes.
 *                                                  The cloud side keeps a persistent subscription and merges.
 *   outpost/{gatewayId}/twin/{deviceId}/desired    cloud → gateway, retained: the child's whole desired
 *                                                  section, `{"$version": n, ...}`; n must grow with changes.
 *
 * `{deviceId}` is the connection id, so a module's twin is `.../twin/{deviceId}/{moduleId}/...`. The gateway's
 * own twin uses its gateway id. On every uplink (re)connect (a resync hook) this opens its own connection to
 * the broker, pushes the pending patches — each cleared only after its PUBACK, and only if no newer local patch
 * arrived meanwhile — and subscribes to the desired documents: the retained ones arrive at once, later changes
 * while the link is up. Each is stored by $version and the difference delivered to the connected child.
 * While connected, reported patches go up as they come (LivePush); a twin connection that drops while the
 * uplink stays up is opened again by itself rather than at the next uplink reconnect.
 */

/** Connect and push, bounded so a dying link cannot hold up the other resync hooks, ms. */
const SYNC_TIMEOUT_MS = 15_000;
/** A twin connection that drops while the uplink stays up is opened again after this, doubling per failure, ms. */
const TWIN_RECONNECT_DELAY_MS_MIN = 1_000;
const TWIN_RECONNECT_DELAY_MS_MAX = 30_000;

export interface MqttTwinSyncOptions {
  store: TwinStore;
  gatewayId: string;
  broker: SideChannelBroker;
  /** Sends the child what it has not seen of its desired section (TwinSync.deliver). */
  deliver(deviceId: string): Promise<void>;
  onError?: (err: Error) => void;
}

export class MqttTwinSync {
  private client: MqttClient | null = null;
  /** The uplink transport while it is connected; the twin connection follows it. */
  private transport: UplinkTransport | null = null;
  private readonly watched = new WeakSet<UplinkTransport>();
  private readonly livePush: LivePush;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryDelayMs = TWIN_RECONNECT_DELAY_MS_MIN;
  pushes = 0;
  /** Desired documents refused (bad topic, JSON or size); counted, never thrown at the broker. */
  refused = 0;
  /** Times the twin connection dropped while the uplink stayed up and was opened again. */
  reconnects = 0;

  constructor(private readonly opts: MqttTwinSyncOptions) {
    this.livePush = new LivePush(
      opts.store,
      () => this.client !== null,
      async () => {
        if (this.client?.connected) await this.pushPending(this.client);
      },
      (err) => this.opts.onError?.(err),
    );
  }

  readonly hook = {
    name: 'twins-mqtt',
    run: async (transport: UplinkTransport): Promise<void> => {
      if (transport.twin !== undefined) return;
      if (!this.watched.has(transport)) {
        this.watched.add(transport);
        transport.onDisconnect(() => {
          if (this.transport === transport) this.transport = null;
          void this.stop();
        });
      }
      this.transport = transport;
      await this.resync();
    },
  };

  private async resync(): Promise<void> {
    await this.stop();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`twin sync took longer than ${SYNC_TIMEOUT_MS} ms`)), SYNC_TIMEOUT_MS);
    });
    try {
      await Promise.race([this.sync(), timeout]);
      this.retryDelayMs = TWIN_RECONNECT_DELAY_MS_MIN;
    } catch (err) {
      await this.stop();
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  private async sync(): Promise<void> {
    const b = this.opts.broker;
    const client = await mqtt.connectAsync(
      b.url,
      sideChannelOptions(b, { reconnectPeriodMs: 0, connectTimeoutMs: SYNC_TIMEOUT_MS }),
    );
    this.client = client;
    client.on('error', (err) => this.opts.onError?.(err));
    // Dropped on its own (stop() forgets the client first): the uplink may still be up, so open it again.
    client.on('close', () => {
      if (this.client === client) this.lost(client);
    });
    await this.livePush.serial(() => this.pushPending(client));
    client.on(
      'message',
      (topic, payload) => void this.onDesired(topic, payload).catch((err: Error) => this.opts.onError?.(err)),
    );
    await client.subscribeAsync(twinDesiredFilters(this.opts.gatewayId), { qos: 1 });
  }

  /** Pending reported patches, each cleared only after its PUBACK and only if nothing newer arrived. */
  private async pushPending(client: MqttClient): Promise<void> {
    for (const item of this.opts.store.pending()) {
      await client.publishAsync(twinTopic(this.opts.gatewayId, item.deviceId, 'reported'), JSON.stringify(item.patch), {
        qos: 1,
      });
      this.pushes += 1;
      await this.opts.store.pushed(item.deviceId, item.generation);
    }
  }

  private lost(client: MqttClient): void {
    this.client = null;
    void client.endAsync(true).catch(() => {});
    if (this.transport === null) return;
    this.opts.onError?.(
      new Error(`twin connection to ${this.opts.broker.url} lost; opening it again in ${this.retryDelayMs} ms`),
    );
    this.scheduleReconnect();
  }

  /** Opens the twin connection again after retryDelayMs while the uplink is up; each failure doubles the wait. */
  private scheduleReconnect(): void {
    if (this.transport === null || this.retryTimer !== null) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      if (this.transport === null) return;
      this.reconnects += 1;
      this.resync().catch((err: Error) => {
        this.opts.onError?.(err);
        this.retryDelayMs = Math.min(this.retryDelayMs * 2, TWIN_RECONNECT_DELAY_MS_MAX);
        this.scheduleReconnect();
      });
    }, this.retryDelayMs);
  }

  private async onDesired(topic: string, payload: Buffer): Promise<void> {
    const prefix = twinTopicPrefix(this.opts.gatewayId);
    const deviceId = topic.slice(prefix.length, -'/desired'.length);
    let doc: unknown = null;
    try {
      doc = payload.length <= TWIN_SECTION_BYTES_MAX ? JSON.parse(payload.toString('utf8')) : null;
    } catch {
      doc = null;
    }
    // An empty retained message clears the topic; it says nothing about the twin.
    if (payload.length === 0) return;
    if (
      splitConnectionId(deviceId) === null ||
      !isJsonObject(doc) ||
      !Number.isSafeInteger(doc.$version) ||
      (doc.$version as number) < 1
    ) {
      this.refused += 1;
      this.opts.onError?.(
        new Error(
          `${topic}: desired document must be a JSON object of at most ${TWIN_SECTION_BYTES_MAX} bytes with a positive integer "$version"`,
        ),
      );
      return;
    }
    await this.opts.store.setDesired(deviceId, doc, doc.$version as number);
    if (deviceId !== this.opts.gatewayId) await this.opts.deliver(deviceId);
  }

  /** Ends the broker connection (uplink down, or a new sync starting). */
  async stop(): Promise<void> {
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.livePush.cancel();
    const client = this.client;
    this.client = null;
    await client?.endAsync(true).catch(() => {});
  }

  /** The hub is stopping. */
  async close(): Promise<void> {
    this.transport = null;
    this.livePush.close();
    await this.stop();
  }
}
