import mqtt, { type MqttClient } from 'mqtt';
import { systemClock, type Clock } from '../clock.js';
import type { ResyncHook } from '../uplink/pump-options.js';
import { DESIRED_SETTLE_MS, type UplinkTransport } from '../uplink/types.js';
import type { UpdateStatus } from './state.js';
import type { Updater } from './updater.js';
import { sideChannelOptions, type SideChannelBroker, updateStatusTopic, updateTopic } from '../side-channel.js';

/**
 * Where update manifests come from and where the update's state goes, following firmware/uplink/settings.ts:
 *
 * - azure: the gateway twin's desired `outpostUpdate` (read at every connect, and again after a patch that
 *   touches it); the state goes to the reported `outpostUpdate`.
 * - mqtt: a retained `outpost/<gatewayId>/update` at the uplink's broker, followed on a connection of its own
 *   while the uplink is up (as the identity scope is); the state goes to a retained
 *   `outpost/<gatewayId>/update/status`.
 *
 * A change of state is reported at once; progress alone at most every UPDATE_PROGRESS_REPORT_MS. A report
 * that cannot go (offline) is sent at the next connect, and only the latest state ever goes.
 */

export const UPDATE_TWIN_PROPERTY = 'outpostUpdate';
/** Progress alone is reported at most this often, ms: a twin update per chunk would flood a metered link. */
export const UPDATE_PROGRESS_REPORT_MS = 10_000;
/** A dropped follower connection is opened again after this, ms: quick, the uplink to the same broker is up. */
const FOLLOW_RECONNECT_MS = 2_000;
/** The follower's connect, bounded: the uplink has just reached the same broker, so it is reachable, ms. */
const FOLLOW_CONNECT_TIMEOUT_MS = 5_000;

/** The reported document: the status without the process-local counters, with a readable time. */
export function reportedUpdate(s: UpdateStatus): Record<string, unknown> {
  return {
    state: s.state,
    version: s.version,
    running: s.running,
    progress: s.progress,
    reason: s.reason,
    message: s.message,
    since: new Date(s.sinceWallMs).toISOString(),
  };
}

export interface UpdateSourceOptions {
  updater: Updater;
  gatewayId: string;
  /** mqtt uplinks: the broker the manifest is read from and the status published to, with the uplink's login. */
  broker?: SideChannelBroker;
  clock?: Clock;
  onError(err: Error): void;
}

export class UpdateSource {
  private transport: UplinkTransport | null = null;
  private online = false;
  private follower: MqttClient | null = null;
  private readonly attached = new WeakSet<UplinkTransport>();
  private settleTimer: NodeJS.Timeout | null = null;
  private lastReportMonoMs = -Infinity;
  private sending = false;
  private sendAgain = false;
  private readonly clock: Clock;
  private readonly unsubscribe: () => void;

  constructor(private readonly opts: UpdateSourceOptions) {
    this.clock = opts.clock ?? systemClock;
    this.unsubscribe = opts.updater.state.onChange((_status, stateChanged) => {
      if (stateChanged || this.clock.monoMs() - this.lastReportMonoMs >= UPDATE_PROGRESS_REPORT_MS) this.report();
    });
  }

  /** On every uplink connect: read the current manifest, then report the state (it may have changed offline). */
  readonly hook: ResyncHook = {
    name: 'ota',
    run: async (transport: UplinkTransport): Promise<void> => {
      this.attach(transport);
      if (transport.twin !== undefined) {
        this.offerDesired((await transport.twin.get()).desired, 'twin desired outpostUpdate');
      } else if (this.opts.broker !== undefined) {
        await this.follow(this.opts.broker);
      }
      this.report();
    },
  };

  async stop(): Promise<void> {
    this.unsubscribe();
    if (this.settleTimer !== null) clearTimeout(this.settleTimer);
    this.online = false;
    await this.stopFollowing();
  }

  private attach(transport: UplinkTransport): void {
    this.transport = transport;
    this.online = true;
    if (this.attached.has(transport)) return;
    this.attached.add(transport);
    transport.onDisconnect(() => {
      this.online = false;
      void this.stopFollowing();
    });
    transport.twin?.onDesired((patch) => {
      if (!(UPDATE_TWIN_PROPERTY in patch)) return;
      // A patch of a nested object carries only the fields that changed: the whole manifest is read again.
      if (this.settleTimer !== null) clearTimeout(this.settleTimer);
      this.settleTimer = setTimeout(() => {
        this.settleTimer = null;
        void transport.twin?.get().then(
          (twin) => this.offerDesired(twin.desired, 'twin desired outpostUpdate'),
          (err: Error) => this.opts.onError(err),
        );
      }, DESIRED_SETTLE_MS);
    });
  }

  private offerDesired(desired: Record<string, unknown>, source: string): void {
    this.opts.updater.offer(desired[UPDATE_TWIN_PROPERTY] ?? null, source);
  }

  private async follow(broker: SideChannelBroker): Promise<void> {
    if (this.follower?.connected) return;
    await this.stopFollowing();
    const topic = updateTopic(this.opts.gatewayId);
    // Held before it connects: a client that never reached the broker would otherwise keep redialling, unowned.
    const timing = { reconnectPeriodMs: FOLLOW_RECONNECT_MS, connectTimeoutMs: FOLLOW_CONNECT_TIMEOUT_MS };
    const client = mqtt.connect(broker.url, sideChannelOptions(broker, timing));
    this.follower = client;
    client.on('error', (err) => this.opts.onError(err));
    try {
      await connected(client, FOLLOW_CONNECT_TIMEOUT_MS, broker.url);
    } catch (err) {
      await this.stopFollowing();
      throw err;
    }
    client.on('message', (t, payload) => {
      if (t === topic) this.opts.updater.offer(payload, `mqtt:${topic}`);
    });
    // mqtt.js resubscribes after its own reconnects; the broker sends the retained manifest again each time.
    await client.subscribeAsync(topic, { qos: 1 });
  }

  private async stopFollowing(): Promise<void> {
    const client = this.follower;
    this.follower = null;
    await client?.endAsync(true).catch(() => {});
  }

  /** Sends the latest state; one report in flight at a time, and one more after it if the state moved. */
  private report(): void {
    if (!this.online) return;
    if (this.sending) {
      this.sendAgain = true;
      return;
    }
    this.sending = true;
    this.lastReportMonoMs = this.clock.monoMs();
    void this.send(reportedUpdate(this.opts.updater.status()))
      .catch((err: Error) => this.opts.onError(new Error(`update state not reported: ${err.message}`, { cause: err })))
      .finally(() => {
        this.sending = false;
        if (this.sendAgain) {
          this.sendAgain = false;
          this.report();
        }
      });
  }

  private async send(doc: Record<string, unknown>): Promise<void> {
    const transport = this.transport;
    if (transport?.twin !== undefined) {
      await transport.twin.patchReported({ [UPDATE_TWIN_PROPERTY]: doc });
    } else if (this.follower?.connected) {
      // Not while the follower reconnects: mqtt.js would hold the publish; the next connect reports anyway.
      const topic = updateStatusTopic(this.opts.gatewayId);
      await this.follower.publishAsync(topic, JSON.stringify(doc), { qos: 1, retain: true });
    }
  }
}

function connected(client: MqttClient, timeoutMs: number, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no connection to ${url} within ${timeoutMs} ms`)), timeoutMs);
    client.once('connect', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
