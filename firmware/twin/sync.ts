import { DESIRED_SETTLE_MS, UplinkError, type TwinChannel, type UplinkTransport } from '../uplink/types.js';
import type { Props } from './merge.js';
import { isJsonObject } from '../json.js';
import { LivePush } from './live-push.js';
import type { TwinStore } from './store.js';

/**
 * Twin reconciliation on every uplink connect (a resync hook, after identities): pending reported patches
 * go up, then the desired sections come down and each connected child gets what changed by $version.
 *
 * IoT Hub gives the gateway one device connection, so children's twins ride in the gateway's twin: the
 * gateway's reported `outpostChildren.<deviceId>` holds each child's reported properties, and its desired
 * `outpostChildren.<deviceId>` each child's desired properties (versioned by the gateway twin's $version).
 * IoT Hub refuses twin keys holding '.', '$' or a space, all legal in device ids, so `<deviceId>` is the id
 * with those (and '%') percent-encoded: `sensor.1` is `sensor%2E1` (see `childKey`).
 * Transports without twins (mqtt) keep twins local: children still read and write them offline.
 * In edge mode (childrenInGatewayTwin false) children's twins are their own (edge-sync.ts), not in this one.
 */

/** Characters IoT Hub refuses in twin keys (and '%', the escape itself), with their escapes. */
const KEY_ESCAPES: Record<string, string> = { '%': '%25', '.': '%2E', $: '%24', ' ': '%20' };

/** The key a child's section has under `outpostChildren`. */
export function childKey(deviceId: string): string {
  return deviceId.replace(/[%.$ ]/g, (c) => KEY_ESCAPES[c]!);
}

function deviceIdOf(key: string): string {
  return key.replace(/%(25|2E|24|20)/gi, (escape) => decodeURIComponent(escape));
}

type PendingPatch = ReturnType<TwinStore['pending']>[number];
const refusedByCloud = (err: unknown) => err instanceof UplinkError && err.code === 'REJECTED';

export const CHILDREN_TWIN_PROPERTY = 'outpostChildren';
/** Gateway-desired keys that belong to outpost itself rather than to the gateway's own desired state. */
const OUTPOST_KEYS = new Set([CHILDREN_TWIN_PROPERTY, 'outpostScope']);

export interface TwinSyncOptions {
  store: TwinStore;
  gatewayId: string;
  /** Sends a desired patch to a connected child; resolves true when it was delivered. */
  deliverDesired(deviceId: string, patch: Props, version: number): Promise<boolean>;
  onError?: (err: Error) => void;
  /**
   * False in edge mode, where each child's twin is its own (edge-sync.ts): the gateway twin then carries
   * only the gateway's properties. Default true (device mode's `outpostChildren`).
   */
  childrenInGatewayTwin?: boolean;
}

export class TwinSync {
  private readonly watched = new WeakSet<UplinkTransport>();
  private desiredTimer: NodeJS.Timeout | null = null;
  /** The twin of the connected uplink, once resynced; null while down. Reported patches go up through it live. */
  private live: TwinChannel | null = null;
  private readonly livePush: LivePush;
  /**
   * Per child, the generation of its pending patch the cloud refused: not sent again until it changes.
   * One entry per twin at most, so bounded by the twin store's TWINS_MAX.
   */
  private readonly refused = new Map<string, number>();
  pushes = 0;

  private get withChildren(): boolean {
    return this.opts.childrenInGatewayTwin ?? true;
  }

  constructor(private readonly opts: TwinSyncOptions) {
    this.livePush = new LivePush(
      opts.store,
      () => this.live !== null,
      async () => {
        if (this.live !== null) await this.push(this.live);
      },
      (err) => this.opts.onError?.(err),
    );
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
          this.desiredTimer = setTimeout(
            () => void this.pull(twin).catch((err: Error) => this.opts.onError?.(err)),
            DESIRED_SETTLE_MS,
          );
        });
      }
      this.stop();
      this.live = null;
      // A failed push must not cost the children their desired properties: report it and pull anyway.
      await this.livePush.serial(() => this.push(twin)).catch((err: Error) => this.opts.onError?.(err));
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

  /**
   * All pending reported patches in one gateway-twin patch; each is cleared only if nothing newer arrived.
   * If the cloud refuses the whole, each child's patch goes up on its own, so one bad patch (a key IoT Hub
   * refuses) blocks nobody else; a refused patch is reported with its child and not sent again until that
   * child reports something new.
   */
  async push(twin: TwinChannel): Promise<void> {
    const pending = this.opts.store
      .pending()
      .filter(
        (item) =>
          this.refused.get(item.deviceId) !== item.generation &&
          (this.withChildren || item.deviceId === this.opts.gatewayId),
      );
    if (pending.length === 0) return;
    try {
      await this.pushBatch(twin, pending);
      return;
    } catch (err) {
      if (!refusedByCloud(err)) throw err;
      if (pending.length === 1) return this.refuse(pending[0]!, err as Error);
    }
    for (const item of pending) {
      await this.pushBatch(twin, [item]).catch((err: Error) => {
        if (!refusedByCloud(err)) throw err;
        this.refuse(item, err);
      });
    }
  }

  private async pushBatch(twin: TwinChannel, items: PendingPatch[]): Promise<void> {
    const patch: Props = {};
    const children: Props = {};
    for (const item of items) {
      if (item.deviceId === this.opts.gatewayId) Object.assign(patch, item.patch);
      else children[childKey(item.deviceId)] = item.patch;
    }
    if (Object.keys(children).length > 0) patch[CHILDREN_TWIN_PROPERTY] = children;
    await twin.patchReported(patch);
    this.pushes += 1;
    for (const item of items) await this.opts.store.pushed(item.deviceId, item.generation);
  }

  private refuse(item: PendingPatch, err: Error): void {
    this.refused.set(item.deviceId, item.generation);
    const message = `reported properties of "${item.deviceId}" refused by IoT Hub: ${err.message}`;
    this.opts.onError?.(new Error(message, { cause: err }));
  }

  async pull(twin: TwinChannel): Promise<void> {
    const { desired } = await twin.get();
    const version = typeof desired.$version === 'number' ? desired.$version : 0;
    const own = Object.fromEntries(Object.entries(desired).filter(([key]) => !OUTPOST_KEYS.has(key)));
    await this.opts.store.setDesired(this.opts.gatewayId, own, version);
    if (!this.withChildren) return;
    const sections = isJsonObject(desired[CHILDREN_TWIN_PROPERTY]) ? (desired[CHILDREN_TWIN_PROPERTY] as Props) : {};
    const children = new Map(Object.entries(sections).map(([key, section]) => [deviceIdOf(key), section]));
    const known = new Set([...children.keys(), ...this.opts.store.devices()]);
    for (const deviceId of known) {
      if (deviceId === this.opts.gatewayId) continue;
      const section = isJsonObject(children.get(deviceId)) ? (children.get(deviceId) as Props) : {};
      await this.opts.store.setDesired(deviceId, section, version);
      await this.deliver(deviceId);
    }
  }

  /** Sends a child what it has not seen of its desired properties (on connect, subscribe, or a change). */
  async deliver(deviceId: string): Promise<void> {
    const pending = this.opts.store.undelivered(deviceId);
    if (pending === null) return;
    if (
      Object.keys(pending.patch).length > 0 &&
      !(await this.opts.deliverDesired(deviceId, pending.patch, pending.version))
    )
      return;
    await this.opts.store.markDelivered(deviceId, pending.version);
  }
}
