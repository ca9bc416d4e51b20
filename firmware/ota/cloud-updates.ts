import { readFile } from 'node:fs/promises';
import type { SideChannelBroker } from '../side-channel.js';
import type { Clock } from '../clock.js';
import type { OtaConfig } from '../config/ota.js';
import type { RingLog } from '../store/log.js';
import type { ResyncHook } from '../uplink/pump-options.js';
import type { BandwidthShare } from './download-throttle.js';
import { releaseLayoutOf } from './health.js';
import { loadPublicKeys, OTA_KEYS_DIR } from './manifest.js';
import { UpdateSource } from './source.js';
import type { UpdateStatus } from './state.js';
import { Updater } from './updater.js';

/**
 * Updates from the cloud, wired for the runtime: the updater over this gateway's data dir, release slots and
 * ring log (whose unused quota a download never takes), and its source on the uplink (a resync hook). Only a
 * release knows its version and target; a gateway run from the repository has no updates.
 */

export interface RunningRelease {
  version: string;
  target: string;
  /** The folder of the running bundle: inside `releases/<version>/` when installed by install.sh. */
  bundleDir: string;
}

export interface UpdateServiceOptions {
  dataDir: string;
  gatewayId: string;
  release: RunningRelease;
  ota: OtaConfig;
  log: RingLog;
  /** The uplink's bandwidth cap in force (board, or the cloud's override); 0 is none. */
  bytesPerSecMax(): number;
  /** The uplink's token bucket: the download takes from the same cap as the backlog's publishes. */
  bandwidth?: BandwidthShare;
  /** mqtt uplinks: the broker of the manifest and status topics. */
  broker?: SideChannelBroker;
  /** Trusted keys; default /etc/outpost/ota-keys. */
  keysDir?: string;
  clock?: Clock;
  restart(reason: string): void;
  onError(err: Error): void;
}

export interface UpdateService {
  readonly hook: ResyncHook;
  status(): UpdateStatus;
  stop(): Promise<void>;
}

export async function startUpdates(o: UpdateServiceOptions): Promise<UpdateService> {
  const ca =
    o.ota.caFile === undefined
      ? undefined
      : await readFile(o.ota.caFile).catch((err: Error) => {
          throw new Error(`ota.caFile ${o.ota.caFile}: ${err.message}`, { cause: err });
        });
  const updater = await Updater.open({
    dataDir: o.dataDir,
    running: { version: o.release.version, target: o.release.target },
    layout: releaseLayoutOf(o.release.bundleDir, o.dataDir),
    publicKeys: () => loadPublicKeys(o.keysDir ?? OTA_KEYS_DIR),
    healthSecs: o.ota.updateHealthSecs,
    budget: {
      downloadBytesMax: o.ota.downloadBytesMax,
      reservedBytes: () => {
        const stats = o.log.stats();
        return stats.quotaBytes - stats.bytesOnDisk;
      },
    },
    bytesPerSecMax: o.bytesPerSecMax,
    bandwidth: o.bandwidth,
    broker: o.broker,
    ca,
    clock: o.clock,
    restart: o.restart,
    onError: o.onError,
  });
  const { gatewayId, broker, clock, onError } = o;
  const source = new UpdateSource({ updater, gatewayId, broker, clock, onError });
  // Not awaited: after a switch, resume() waits for the new release's commit, long after start-up.
  updater.resume().catch((err: Error) => o.onError(err));
  return {
    hook: source.hook,
    status: () => updater.status(),
    async stop() {
      await source.stop();
      await updater.stop();
    },
  };
}
