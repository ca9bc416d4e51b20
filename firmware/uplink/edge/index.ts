import { createSecureContext } from 'node:tls';
import type { Clock } from '../../clock.js';
import type { StoredRecord } from '../../store/types.js';
import type { BackoffOptions } from '../backoff.js';
import type { PumpLane } from '../cursor.js';
import type { PumpSessionFactory } from '../drain.js';
import { RECORD_KEY } from '../message.js';
import { EdgeCloudRelay, type CloudRelayStatus, type LocalChildren } from './cloud.js';
import { HeldLane } from './held.js';
import { createIdentityLink, type IdentityLink } from './link.js';
import { ConnectionPool, type PoolStatus } from './pool.js';
import { DeadLetterResend, type ResendStatus } from './resend.js';
import { EdgeDrainSession } from './session.js';
import type { EdgeHubCredentials } from './token.js';
import { PoolTwins } from './twins.js';
import type { DownlinkSink } from '../azure-downlink.js';

export { HELD_LANE_NAME } from './held.js';
export type { EdgeHubCredentials } from './token.js';
export type { IdentityTwins } from './twins.js';
export type { LocalChildEvent, LocalChildren } from './cloud.js';

export interface EdgeUplinkOptions {
  gatewayId: string;
  /**
   * The gateway's own devices that go up as the gateway (board.json's drivers with cloudIdentity "gateway"):
   * their records go on the gateway's connection even without the $gatewayDevice mark.
   */
  gatewayDevices?: ReadonlySet<string>;
  credentials: EdgeHubCredentials;
  clock: Clock;
  /** The holding lane (held.ts), a lane of the same ring log. */
  heldLane: PumpLane;
  /** The pump's dead-letter lane: a refused identity's letters are sent again from it when it is back. */
  deadLetterLane?: PumpLane;
  /** The ring log's store clock, for the copies' remaining TTL. */
  storeNowMs: () => number;
  ca?: string;
  keepaliveSecs?: number;
  connectionsMax?: number;
  idleSecs?: number;
  connectsPerSecMax?: number;
  connectTimeoutMs: number;
  publishTimeoutMs: number;
  backoff?: BackoffOptions;
  tokenTtlSecs?: number;
  reportError: (err: Error) => void;
  /** Tests: records read ahead per lane, records (default EDGE_READ_AHEAD_RECORDS_MAX, lane-cursor.ts). */
  readAheadRecordsMax?: number;
  /** Tests: a link of another kind (a fault proxy's host) instead of the on-behalf-of one; given the sink. */
  createLink?: (identity: string, sink: DownlinkSink) => IdentityLink;
}

export interface EdgeStatus extends PoolStatus {
  /** Identities whose records are parked in the holding lane. */
  parked: number;
  /** Dead letters of refused identities sent again, expired meanwhile, and identities still waited for. */
  deadLetters: ResendStatus;
  /** Cloud → child: C2D messages and method calls relayed to children at the local hub. */
  cloud: CloudRelayStatus;
}

/**
 * Edge mode: the gateway is an IoT Edge device and each child (and module) goes up as itself, on a connection
 * of its own that the gateway's `$edgeHub` credentials authenticate on its behalf. The pump keeps the
 * gateway's own connection (its drivers' telemetry, its twin, cloud settings); this adds the pool of the
 * children's connections, which outlives the gateway's reconnects, and the session that spreads the lanes
 * over them.
 */
export class EdgeUplink {
  readonly pool: ConnectionPool;
  /** The children's own twins on their connections, for the hub's twin sync (firmware/twin/edge-sync.ts). */
  readonly twins: PoolTwins;
  private readonly relay: EdgeCloudRelay;
  private readonly held: HeldLane;
  private readonly resend: DeadLetterResend | null;
  private session: EdgeDrainSession | null = null;
  private readonly identityOf: (record: StoredRecord) => string;

  constructor(private readonly opts: EdgeUplinkOptions) {
    const gatewayDevices = opts.gatewayDevices ?? new Set<string>();
    const identityOf = (record: StoredRecord) => identityOfRecord(record, opts.gatewayId, gatewayDevices);
    this.held = new HeldLane(opts.heldLane, opts.storeNowMs, identityOf);
    const deadLane = opts.deadLetterLane;
    this.resend = deadLane === undefined ? null : new DeadLetterResend(deadLane, identityOf, opts.storeNowMs);
    const relay = new EdgeCloudRelay(
      {
        retain: (id) => this.pool.retain(id),
        release: (id) => this.pool.release(id),
      },
      opts.gatewayId,
      opts.reportError,
    );
    this.relay = relay;
    // One TLS context for every child's connection (same CA): each connect would otherwise parse the CA
    // into a store of its own, kept for the life of the connection.
    const secureContext = createSecureContext(opts.ca === undefined ? {} : { ca: opts.ca });
    const make =
      opts.createLink ??
      ((identity: string, sink: DownlinkSink) =>
        createIdentityLink({
          identity,
          credentials: opts.credentials,
          wallMs: () => opts.clock.wallMs(),
          sink,
          secureContext,
          ...(opts.ca === undefined ? {} : { ca: opts.ca }),
          ...(opts.keepaliveSecs === undefined ? {} : { keepaliveSecs: opts.keepaliveSecs }),
          ...(opts.tokenTtlSecs === undefined ? {} : { tokenTtlSecs: opts.tokenTtlSecs }),
        }));
    const createLink = (identity: string) => relay.track(make(identity, relay.sinkFor(identity)));
    this.pool = new ConnectionPool({
      clock: opts.clock,
      createLink,
      ...(opts.connectionsMax === undefined ? {} : { connectionsMax: opts.connectionsMax }),
      ...(opts.idleSecs === undefined ? {} : { idleSecs: opts.idleSecs }),
      ...(opts.connectsPerSecMax === undefined ? {} : { connectsPerSecMax: opts.connectsPerSecMax }),
      connectTimeoutMs: opts.connectTimeoutMs,
      ...(opts.backoff === undefined ? {} : { backoff: opts.backoff }),
      onChange: () => {
        this.session?.notify();
        this.twins.changed();
      },
      busy: (identity) => this.session?.busy(identity) ?? false,
      reportError: opts.reportError,
    });
    this.identityOf = identityOf;
    this.twins = new PoolTwins(this.pool);
  }

  /** For PumpOptions.createSession. */
  readonly createSession: PumpSessionFactory = (host, lanes) => {
    const session = new EdgeDrainSession(host, lanes, {
      pool: this.pool,
      held: this.held,
      resend: this.resend,
      identityOf: this.identityOf,
      publishTimeoutMs: this.opts.publishTimeoutMs,
      ...(this.opts.readAheadRecordsMax === undefined ? {} : { readAheadRecordsMax: this.opts.readAheadRecordsMax }),
    });
    this.session = session;
    void session.done.finally(() => this.session === session && (this.session = null)).catch(() => {});
    return session;
  };

  /** The local hub's children: their presence opens their connections, and the cloud reaches them. */
  attachLocal(local: LocalChildren): void {
    this.relay.attach(local);
  }

  status(): EdgeStatus {
    const deadLetters = this.resend?.status() ?? { resent: 0, expired: 0, waiting: 0 };
    return { ...this.pool.status(), parked: this.held.parkedIdentities(), deadLetters, cloud: this.relay.status() };
  }

  /** The registry lists these identities (again): any IoT Hub refused is tried now, its dead letters re-sent. */
  identitiesReturned(identities: Iterable<string>): void {
    this.pool.recheck(identities);
  }

  close(): Promise<void> {
    this.relay.close();
    return this.pool.close();
  }
}

/**
 * The identity a record goes up as: its device's own, except for the gateway's drivers (no IoT Hub identity:
 * they go on the gateway's connection, named in `outpost-device-id` as in device mode) and the gateway itself.
 * A driver's record is known by its mark or by its device id: records stored before the mark existed (still
 * in a lane, or dead-lettered as `identity-refused` under the driver's id) carry none, and would otherwise
 * wait for an identity IoT Hub never has. A driver with cloudIdentity "own" is in neither: it goes as itself.
 */
export function identityOfRecord(record: StoredRecord, gatewayId: string, gatewayDevices: ReadonlySet<string>): string {
  if (record.properties[RECORD_KEY.gatewayDevice] !== undefined) return gatewayId;
  const deviceId = record.properties[RECORD_KEY.deviceId];
  if (!deviceId || gatewayDevices.has(deviceId)) return gatewayId;
  return deviceId;
}
