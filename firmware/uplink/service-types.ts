import type { Clock } from '../clock.js';
import type { SimCloudStatus } from '../sim/cloud.js';
import type { RingLog } from '../store/log.js';
import type { UplinkConfig } from './config.js';
import type { BackoffOptions } from './backoff.js';
import type { EdgeHubCredentials, EdgeStatus, IdentityTwins, LocalChildren } from './edge/index.js';
import type { EdgeHubModuleStatus, ProvisionedUplinkOptions, ProvisioningStatus } from './provisioning/index.js';
import type { LinkState, PumpOptions, PumpStatus, ResyncHook } from './pump.js';
import type { SettingsStatus } from './settings.js';
import type { UplinkStartFiles } from './start-files.js';

/** The uplink service's options, status and handle (service.ts starts it). */

export interface UplinkServiceOptions {
  config: UplinkConfig;
  /** board.json's identity.gatewayId: the first part of every stable message id. */
  gatewayId: string;
  /**
   * The gateway's own devices that go up as the gateway in edge mode (board.json's devices with cloudIdentity
   * "gateway"); none when not given.
   */
  gatewayDevices?: ReadonlySet<string>;
  log: RingLog;
  /** Where cloud-pushed settings are saved: the ring log's data dir. */
  dataDir: string;
  /** The uplink's files as read once at this start (uplink-files.ts); read here when not given. */
  files?: UplinkStartFiles;
  clock?: Clock;
  /** Every error the uplink recovers from (link failures, refused settings), for the journal. */
  onError?: (err: Error) => void;
  /** Where interface state is read. Default /sys/class/net; tests and the benchmark pass a temp dir. */
  sysClassNetDir?: string;
  /**
   * Run on every connect after the settings hook, in order (identities, then twins). Given here, not added
   * later, so that they exist before the first connect: a hook missing then misses that whole connection.
   */
  resyncHooks?: ResyncHook[];
  /** DPS registration backoff and timeout board.json does not expose, for tests. */
  provisioningOverrides?: Pick<ProvisionedUplinkOptions, 'backoff' | 'timeoutMs'> & {
    /** The `$edgeHub` setup's retry backoff (edge-hub.ts). */
    edgeHubBackoff?: BackoffOptions;
  };
  /** Edge mode with DPS: the `$edgeHub` module is set up (again); the hub may read the device scope now. */
  onEdgeHubReady?: () => void;
  /** Pump limits board.json does not expose (timeouts, batches), for tests and the benchmark. */
  pumpOverrides?: Partial<
    Omit<PumpOptions, 'gatewayId' | 'transport' | 'lanes' | 'clock' | 'resyncHooks' | 'backlogStats' | 'onError'>
  >;
}

export interface UplinkStatus extends Omit<PumpStatus, 'link' | 'protocol'> {
  /** `disabled` when board.json says `"protocol": "none"`. */
  link: LinkState | 'disabled';
  protocol: UplinkConfig['protocol'];
  /** Last seen state of each watched interface. */
  interfaces: Record<string, 'up' | 'down'>;
  /** Cloud-pushed settings in force; null when the uplink is disabled. */
  settings: SettingsStatus | null;
  /** The sim board's embedded cloud: its simulated link and what its consumer received. */
  simCloud?: SimCloudStatus;
  /** azure with DPS: the registration and the identity in use, and in edge mode its `$edgeHub` module. */
  provisioning?: ProvisioningStatus & { edgeHub?: EdgeHubModuleStatus };
  /** Edge mode: the children's upstream connections and the parked identities. */
  edge?: EdgeStatus;
}

export interface UplinkService {
  readonly protocol: UplinkConfig['protocol'];
  /** azure: the IoT Hub host of the gateway's connection string, which children's SAS tokens name too. */
  status(): UplinkStatus;
  /** Edge mode: the children's own twins on their upstream connections (absent in device mode). */
  readonly identityTwins?: IdentityTwins;
  /**
   * The uplink's `bytesPerSecMax` token bucket (the pump's): another sender on the same link takes its bytes
   * from it, so the two together stay under the one cap. `take` returns 0 or the ms to wait (nothing taken).
   */
  readonly bandwidth: { take(bytes: number): number };
  /** The link is back (SIGUSR2, a dialer callback): connect now instead of sleeping out the backoff. */
  wake(reason: string): void;
  /**
   * Adds a step to every (re)connect, run after the ones before it and before the drain (the settings hook
   * is always first; identities, then twins, come next). A hook added while connected runs from the next connect.
   */
  addResyncHook(hook: ResyncHook): void;
  /** The registry lists these identities again: edge mode retries the refused ones and re-sends their letters. */
  identitiesReturned?(identities: string[]): void;
  /**
   * azure with DPS: the IoT Hub assigned now (children's SAS tokens name it as audience); it changes when the
   * gateway is provisioned for the first time and when it is re-provisioned to another hub.
   */
  hubHosts?(): string[];
  /** Edge mode with DPS: IoT Hub refused the `$edgeHub` token (a 401): the module is checked and re-keyed. */
  edgeHubRefused?(): void;
  /** Edge mode: the `$edgeHub` credentials in use now (a provisioned gateway's change); null while there are none. */
  edgeHubCredentials?(): EdgeHubCredentials | null;
  /** Edge mode: the local hub's children, whom their upstream connections then follow (no-op otherwise). */
  attachLocalChildren?(local: LocalChildren): void;
  /** Lets in-flight publishes finish, saves settings, closes the connection; the pump's part within `budgetMs`. */
  stop(budgetMs?: number): Promise<void>;
}
