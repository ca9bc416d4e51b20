import { twinError } from './azure-errors.js';
import type { DeviceClient, Twin } from './azure-sdk.js';
import { UplinkError, type TwinChannel } from './types.js';

/**
 * The device twin of the `azure` transport's current connection: fetched once per connection, desired
 * patches passed on only when newer than the last version seen.
 */
export class AzureTwin implements TwinChannel {
  private readonly desiredListeners = new Set<(patch: Record<string, unknown>) => void>();
  private twin: Twin | null = null;
  /** The desired section's $version as last read or patched: a patch at or below it is old news. */
  private desiredVersion = 0;

  /** `connection` gives the SDK client while it is connected, else null. */
  constructor(private readonly connection: () => DeviceClient | null) {}

  /** The connection is gone: the next use fetches the twin of the next one. */
  reset(): void {
    this.twin = null;
  }

  /** On a new connection: fetches the twin at once when someone listens for desired patches. */
  async prime(): Promise<void> {
    if (this.desiredListeners.size > 0) await this.current();
  }

  async get(): Promise<{ desired: Record<string, unknown>; reported: Record<string, unknown> }> {
    const t = await this.current();
    // A fresh GET each time: the twin may have changed while we were offline.
    await t.get();
    const version = t.properties.desired.$version;
    if (typeof version === 'number') this.desiredVersion = version;
    return { desired: { ...t.properties.desired }, reported: { ...t.properties.reported } };
  }

  async patchReported(patch: Record<string, unknown>): Promise<void> {
    const t = await this.current();
    await new Promise<void>((resolve, reject) =>
      t.properties.reported.update(patch, (err?: Error) => (err ? reject(twinError(err)) : resolve())),
    );
  }

  onDesired(listener: (patch: Record<string, unknown>) => void): () => void {
    this.desiredListeners.add(listener);
    if (this.connection() !== null) this.current().catch(() => {});
    return () => this.desiredListeners.delete(listener);
  }

  private async current(): Promise<Twin> {
    const c = this.connection();
    if (c === null) throw new UplinkError('DISCONNECTED', 'not connected to IoT Hub');
    if (this.twin !== null) return this.twin;
    const fresh = await c.getTwin();
    if (this.connection() !== c) throw new UplinkError('DISCONNECTED', 'connection lost while fetching the twin');
    fresh.on('properties.desired', (patch: Record<string, unknown>) => {
      // The SDK fires this event with its own whole desired section after every GET and when a listener is
      // added, not only for patches: passed on, each GET would make the twin and scope syncs GET again,
      // forever. Only a cloud patch (its own object) with a $version newer than the last seen is a change.
      if (patch === fresh.properties.desired) return;
      const version = patch.$version;
      if (typeof version === 'number') {
        if (version <= this.desiredVersion) return;
        this.desiredVersion = version;
      }
      for (const listener of this.desiredListeners) listener(patch);
    });
    if (typeof fresh.properties.desired.$version === 'number') this.desiredVersion = fresh.properties.desired.$version;
    this.twin = fresh;
    return fresh;
  }
}
