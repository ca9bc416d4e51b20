import type { TwinChannel, UplinkTransport } from '../uplink/types.js';
import { DESIRED_SETTLE_MS } from '../auth/scope-sync.js';
import { isProps, type Props } from './merge.js';
import { LivePush } from './live-push.js';
import type { TwinStore } from './store.js';

/**
 * Twin reconciliation on every uplink connect (a resync hook, after identities): pending reported patches
 * go up, then the desired sections come down and each connected child gets what changed by $version.
 *
 * IoT Hub gives the gateway one device connection, so children's twins ride in the gateway's twin: the
 * gateway's reported `outpostChildren.<deviceId>` holds each child's reported properties, and its desired
 * `outpostChildren.<deviceId>` each child's desired properties (versioned by the gateway twin's $version).
 * Transports without twins (mqtt) keep twins local: children still read and write them offline.
 */

export const CHILDREN_TWIN_PROPERTY = 'outpostChildren';
/** Gateway-desired keys that belong to outpost itself rather than to the gateway's own desired state. */
const OUTPOST_KEYS = new Set([CHILDREN_TWIN_PROPERTY, 'outpostScope']);

export interface TwinSyncOptions {
  store: TwinStore;
  gatewayId: string;
  /** Sends a desired patch to a connected child; resolves true when it was delivered. */
  deliverDesired(deviceId: string, patch: Props, version: number): Promise<boolean>;
  onError?: (err: Error) => void;
}

export class TwinSync {
  private readonly watched = new WeakSet<UplinkTransport>();
  private desiredTimer: NodeJS.Timeout | null = null;
  /** The twin of the connected uplink, once resynced; null while down. Reported patches go up through it live. */
  private live: TwinChannel | null = null;
  private readonly livePush: LivePush;
  pushes = 0;

  constructor(private readonly opts: TwinSyncOptions) {
    this.livePush = new LivePush(opts.store, () => this.live !== null, async () => {
      if (this.live !== null) await this.push(this.live);
    }, (err) => this.opts.onError?.(err));
  }

  readonly hook = {
    name: 'twins',
    run: async (transport: UplinkTransport): Promise<void> => {
      const twin = transport.twin;
      if (twin === undefined) return;
      if (!this.watched.has(transport)) {
        this.watched.add(transport);
        transport.onDisconnect(() => {
          if (this.live === twin) this.live = null;
        });
        // Desired changes while connected: re-read after a quiet period (see DESIRED_SETTLE_MS for why).
        twin.onDesired(() => {
          this.stop();
          this.desiredTimer = setTimeout(() => void this.pull(twin).catch((err: Error) => this.opts.onError?.(err)), DESIRED_SETTLE_MS);
        });
      }
      this.stop();
      this.live = null;
      await this.livePush.serial(() => this.push(twin));
      await this.pull(twin);
      this.live = twin;
      // Patches that came in during the resync.
      if (this.opts.store.pending().length > 0) this.livePush.schedule();
    },
  };

  stop(): void {
    if (this.desiredTimer !== null) clearTimeout(this.desiredTimer);
    this.desiredTimer = null;
  }

  /** The hub is stopping: no more live pushes. */
  close(): void {
    this.stop();
    this.live = null;
    this.livePush.close();
  }

  /** All pending reported patches in one gateway-twin patch; each is cleared only if nothing newer arrived. */
  async push(twin: TwinChannel): Promise<void> {
    const pending = this.opts.store.pending();
    if (pending.length === 0) return;
    const patch: Props = {};
    const children: Props = {};
    for (const item of pending) {
      if (item.deviceId === this.opts.gatewayId) Object.assign(patch, item.patch);
      else children[item.deviceId] = item.patch;
    }
    if (Object.keys(children).length > 0) patch[CHILDREN_TWIN_PROPERTY] = children;
    await twin.patchReported(patch);
    this.pushes += 1;
    for (const item of pending) await this.opts.store.pushed(item.deviceId, item.generation);
  }

  async pull(twin: TwinChannel): Promise<void> {
    const { desired } = await twin.get();
    const version = typeof desired.$version === 'number' ? desired.$version : 0;
    const own = Object.fromEntries(Object.entries(desired).filter(([key]) => !OUTPOST_KEYS.has(key)));
    await this.opts.store.setDesired(this.opts.gatewayId, own, version);
    const children = isProps(desired[CHILDREN_TWIN_PROPERTY]) ? (desired[CHILDREN_TWIN_PROPERTY] as Props) : {};
    const known = new Set([...Object.keys(children), ...this.opts.store.devices()]);
    for (const deviceId of known) {
      if (deviceId === this.opts.gatewayId) continue;
      const section = isProps(children[deviceId]) ? (children[deviceId] as Props) : {};
      await this.opts.store.setDesired(deviceId, section, version);
      await this.deliver(deviceId);
    }
  }

  /** Sends a child what it has not seen of its desired properties (on connect, subscribe, or a change). */
  async deliver(deviceId: string): Promise<void> {
    const pending = this.opts.store.undelivered(deviceId);
    if (pending === null) return;
    if (Object.keys(pending.patch).length > 0 && !(await this.opts.deliverDesired(deviceId, pending.patch, pending.version))) return;
    await this.opts.store.markDelivered(deviceId, pending.version);
  }
}
