import type net from 'node:net';
import tls from 'node:tls';
import type { Aedes, AedesPublishPacket, Client } from 'aedes';
import type { Clock } from '../clock.js';
import type { Authenticator } from '../auth/authenticator.js';
import { StoreError } from '../store/errors.js';
import type { ClientState, ServerHandlers } from './client-state.js';
import type { HubConfig } from './config.js';
import type { RefusalSource } from './refusal-log.js';
import type { PublishRefusal, Refusal } from './refusals.js';
import { classifyPublish, subscriptionAllowed, type Inbound } from './topics.js';

/**
 * Admission: what the hub lets in. A CONNECT (its will, the clients cap, authentication), a SUBSCRIBE (the
 * ACL) and each PUBLISH (ACL, size, inflight, rate), the publish then handed to `onPublish` and PUBACKed.
 */

export interface Admission {
  readonly config: HubConfig;
  readonly auth: Authenticator;
  readonly clock: Clock;
  readonly handlers: ServerHandlers;
  readonly states: ReadonlyMap<string, ClientState>;
  count(reason: Refusal, from?: RefusalSource): void;
  /** Marks an error the hub raised for a refusal it has already counted. */
  counted(err: Error): Error;
}

type Done = (err?: Error | null) => void;

/** Before its CONNECT a client has no id (null), and its socket may be gone (no address). */
export function sourceOf(client: Client): RefusalSource {
  return { clientId: client.id ?? undefined, address: (client.conn as net.Socket | undefined)?.remoteAddress };
}

/** Sets the broker's preConnect, authenticate, authorizeSubscribe and authorizePublish hooks. */
export function installAdmission(b: Aedes, hub: Admission): void {
  b.preConnect = (client, packet, done) => {
    // The hub's lanes are the session store; an aedes session would re-send what the lanes re-send.
    packet.clean = true;
    // A will would be published after the child is gone, with nobody to answer for it; children get none.
    // It goes here, before aedes stores it: at close aedes authorises it while the client still counts as
    // connected, so no later check can tell it from the child's own publish.
    if (packet.will) {
      packet.will = undefined;
      hub.count('will', { clientId: packet.clientId, address: (client.conn as net.Socket).remoteAddress });
    }
    if (hub.states.size >= hub.config.clientsMax && !hub.states.has(packet.clientId)) {
      hub.count('clients-max', { clientId: packet.clientId, address: (client.conn as net.Socket).remoteAddress });
      return done(null, false);
    }
    done(null, true);
  };
  b.authenticate = (client, username, password, done) => {
    const socket = client.conn as net.Socket;
    const refusal = hub.auth.authenticate({
      clientId: client.id,
      username,
      password,
      tls: socket instanceof tls.TLSSocket ? socket : null,
      remoteAddress: socket.remoteAddress ?? 'unknown',
    });
    if (refusal === null) return done(null, true);
    hub.count(refusal, sourceOf(client));
    const returnCode = refusal === 'rate-limited' ? 3 : 5;
    const err = Object.assign(hub.counted(new Error(`refused: ${refusal}`)), { returnCode });
    done(err as Parameters<typeof done>[0], false);
  };
  b.authorizeSubscribe = (client, sub, done) => {
    if (subscriptionAllowed(client.id, sub.topic)) return done(null, sub);
    hub.count('subscribe-acl', sourceOf(client));
    done(null, null);
  };
  b.authorizePublish = (client, packet, done) => authorizePublish(hub, client, packet as AedesPublishPacket, done);
}

function authorizePublish(hub: Admission, client: Client | null, packet: AedesPublishPacket, done: Done): void {
  if (client === null || client.closed) return done(hub.counted(new Error('publish from a closed connection')));
  // aedes writes CONNACK before it marks the client connected, and reads the next packets in between: an SDK
  // sends what it queued as soon as CONNACK arrives. Such a publish waits for the connect to finish.
  if (!client.connected) return void client.once('connected', () => authorizePublish(hub, client, packet, done));
  const source = { clientId: client.id, address: (client.conn as net.Socket).remoteAddress };
  const refuse = (reason: PublishRefusal, detail: string = reason) => {
    hub.count(reason, source);
    done(hub.counted(new Error(`publish refused (${detail}) on ${JSON.stringify(packet.topic.slice(0, 200))}`)));
  };
  const state = hub.states.get(client.id);
  if (state?.client !== client) return refuse('acl');
  if (packet.qos === 2) return refuse('qos2');
  if (packet.topic.includes('\u0000')) return refuse('malformed-topic');
  const inbound = classifyPublish(client.id, packet.topic);
  if (inbound === null) return refuse('acl');
  if (Buffer.byteLength(packet.topic) + packet.payload.length > hub.config.messageBytesMax)
    return refuse('message-size');
  if (state.inflight >= hub.config.inflightMax) return refuse('inflight');
  const delayMs = state.throttle.take(hub.clock.monoMs());
  if (delayMs === 'refuse') return refuse('rate');
  if (inbound.kind === 'telemetry' && inbound.reservedDropped > 0) hub.count('reserved-property', source);
  // aedes would keep retained messages in memory without bound; nothing here is meant to be retained.
  packet.retain = false;
  state.inflight += 1;
  const serveNow = () => {
    if (client.closed) {
      state.inflight -= 1;
      return done(hub.counted(new Error('connection closed while its publish was throttled')));
    }
    serve(hub, client.id, state, inbound, packet, done, refuse);
  };
  if (delayMs === 0) serveNow();
  else setTimeout(serveNow, delayMs);
}

/** Hands an admitted publish on; `done` (the PUBACK) once it was dealt with. */
function serve(
  hub: Admission,
  id: string,
  state: ClientState,
  inbound: Inbound,
  packet: AedesPublishPacket,
  done: Done,
  refuse: (reason: PublishRefusal, detail: string) => void,
): void {
  hub.handlers.onPublish(id, inbound, Buffer.from(packet.payload)).then(
    () => {
      state.inflight -= 1;
      done(null);
    },
    (err: Error) => {
      state.inflight -= 1;
      // Within messageBytesMax, but the record (body + the properties its topic carries) is over the store's
      // limits: the message's fault, not the store's.
      const tooLarge = err instanceof StoreError && err.code === 'TOO_LARGE';
      refuse(tooLarge ? 'message-size' : 'store', err.message);
    },
  );
}
