import type { Clock } from '../../clock.js';
import type { RingLog } from '../../store/log.js';
import type { AzureUplinkConfig } from '../config.js';
import { DEAD_LETTER_LANE_NAME } from '../dead-letter.js';
import { LIMIT_RANGES } from '../pump-options.js';
import { EdgeUplink, HELD_LANE_NAME } from './index.js';
import type { EdgeHubCredentials } from './token.js';

export interface StartEdgeOptions {
  config: AzureUplinkConfig;
  credentials: EdgeHubCredentials;
  /** The gateway's own CA (uplink.caFile, read): the children's connections trust the same roots. */
  ca: string | undefined;
  log: RingLog;
  clock: Clock;
  gatewayId: string;
  /** board.json's drivers that go up as the gateway (EdgeUplinkOptions.gatewayDevices). */
  gatewayDevices: ReadonlySet<string>;
  onError: (err: Error) => void;
}

/** Edge mode's part of the uplink service: the holding lane and the pool, from board.json's options. */
export async function startEdge(opts: StartEdgeOptions): Promise<{ uplink: EdgeUplink; heldLaneName: string }> {
  const { config, log } = opts;
  const ca = opts.ca;
  const uplink = new EdgeUplink({
    gatewayId: opts.gatewayId,
    gatewayDevices: opts.gatewayDevices,
    credentials: opts.credentials,
    clock: opts.clock,
    heldLane: await log.lane(HELD_LANE_NAME),
    deadLetterLane: await log.lane(DEAD_LETTER_LANE_NAME),
    storeNowMs: () => log.storeNowMs(),
    ...(ca === undefined ? {} : { ca }),
    ...(config.keepaliveSecs === undefined ? {} : { keepaliveSecs: config.keepaliveSecs }),
    connectionsMax: config.cloudConnectionsMax,
    idleSecs: config.cloudConnectionIdleSecs,
    connectsPerSecMax: config.cloudConnectsPerSecMax,
    connectTimeoutMs: config.connectTimeoutMs ?? LIMIT_RANGES.connectTimeoutMs[2],
    publishTimeoutMs: config.publishTimeoutMs,
    backoff: config.backoff,
    reportError: opts.onError,
  });
  return { uplink, heldLaneName: HELD_LANE_NAME };
}
