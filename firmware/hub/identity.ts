import type { Clock } from '../clock.js';
import { Authenticator } from '../auth/authenticator.js';
import { IdentityCache, type ScopeChange } from '../auth/cache.js';
import type { DeviceScopeSource } from '../auth/scope-api.js';
import { ScopeSync } from '../auth/scope-sync.js';
import type { SideChannelBroker } from '../side-channel.js';
import type { HubConfig } from './config.js';

/** The children's identities as the hub checks them: the sealed cache, its sync from the cloud, the checks. */
export interface HubIdentity {
  cache: IdentityCache;
  scope: ScopeSync;
  auth: Authenticator;
}

export interface IdentityOptions {
  config: HubConfig;
  gatewayId: string;
  /** The identity cache and its key file live here. */
  dataDir: string;
  clock: Clock;
  /** mqtt uplinks: the broker the retained scope document is read from. */
  scopeBroker?: SideChannelBroker;
  /** azure edge mode: children are read from IoT Hub's device-scope API as the gateway's $edgeHub. */
  deviceScope?: DeviceScopeSource;
  /**
   * The uplink's IoT Hub host: children's standard connection strings name it, so their tokens are accepted.
   * Read at every CONNECT, since a provisioned gateway's hub is known only once assigned, and may change.
   */
  cloudHostNames?: () => readonly string[];
  /** The uplink's link state; the periodic and unknown-device refreshes run only while it is up. */
  isOnline?: () => boolean;
  /** The scope changed: the server's TLS trust bundle (X.509 children's CAs) follows it. */
  onChange: (change: ScopeChange) => void;
  onError: (err: Error) => void;
}

/**
 * Opens the identity cache and builds the scope sync that keeps it in step with the cloud and the
 * authenticator that checks each CONNECT against it (an unknown id asks the sync for a targeted read).
 * The scope sync is not started: its resync hook and start() are the caller's to wire.
 */
export async function startIdentity(opts: IdentityOptions): Promise<HubIdentity> {
  const { config, clock, onError } = opts;
  const cache = await IdentityCache.open(opts.dataDir, onError);
  const scope = new ScopeSync({
    cache,
    gatewayId: opts.gatewayId,
    clock,
    refreshSecs: config.identityRefreshSecs,
    broker: opts.scopeBroker,
    onError,
    deviceScope: opts.deviceScope,
    isOnline: opts.isOnline,
    onChange: opts.onChange,
  });
  const cloud = opts.cloudHostNames ?? (() => []);
  const audiences = () => [...config.hostNames, ...cloud()];
  const auth = new Authenticator(cache, clock, audiences, config, (id) => scope.requestDevice(id));
  return { cache, scope, auth };
}
