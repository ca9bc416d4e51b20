import net from 'node:net';
import tls from 'node:tls';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import type { Clock } from '../clock.js';
import type { Authenticator } from '../auth/authenticator.js';
import { useCompactMqttEncoder } from '../mqtt-encoder.js';
import { StoreError } from '../store/errors.js';
import type { HubConfig } from './config.js';
import { ConnectionGate, socketsMax } from './gate.js';
import { HubListeners, type TlsMaterial } from './listeners.js';
import { guardSocket } from './packet-guard.js';
import { RefusalLog, type RefusalSource } from './refusal-log.js';
import { REFUSAL_HINTS, type PublishRefusal, type Refusal } from './refusals.js';
import { PublishThrottle } from './throttle.js';
import { classifyPublish, subscriptionAllowed, type Inbound } from './topics.js';

/**
 * The MQTT server children connect to: aedes on a loopback TCP listener and/or a TLS listener. aedes routes
 * nothing here — every inbound publish is classified, checked against the ACL and handed to `onPublish`,
 * and everything a child receives is sent to it directly by `deliver`.
 */

export interface ServerHandlers {
  /** Must resolve only when the publish has been dealt with (telemetry: durable); then it is PUBACKed. */
  onPublish(deviceId: string, inbound: Inbound, payload: Buffer): Promise<void>;
  onConnected(deviceId: string): void;
  onDisconnected(deviceId: string): void;
  onSubscribed(deviceId: string, filter: string): void;
}

/**
 * Room in a packet beyond the message (topic + payload, bounded by `messageBytesMax`): fixed header, topic
 * length, packet id and MQTT 5 properties, bytes. Publishes between the two limits still get the counted
 * 'message-size' refusal; past the sum the connection closes before the body is read.
 */
const PACKET_OVERHEAD_BYTES_MAX = 8 * 1024;
/** MQTT packet identifiers run 1..65,535 and wrap. */
const MESSAGE_ID_MAX = 65_535;

interface ClientState {
  client: Client;
  inflight: number;
  throttle: PublishThrottle;
  subscriptions: Set<string>;
  acks: Map<number, { resolve: () => void; reject: (err: Error) => void }>;
}

export class HubServer {
  private readonly states = new Map<string, ClientState>();
  private readonly refusalLog: RefusalLog<Refusal>;
  private readonly gate: ConnectionGate;
  private readonly listeners: HubListeners;
  private readonly countedErrors = new WeakSet<Error>();

  constructor(
    private readonly broker: Aedes,
    private readonly config: HubConfig,
    private readonly auth: Authenticator,
    private readonly clock: Clock,
    private readonly handlers: ServerHandlers,
    onSummary: (text: string) => void,
  ) {
    this.refusalLog = new RefusalLog(clock, onSummary, REFUSAL_HINTS);
    this.gate = new ConnectionGate(config, socketsMax(config), (reason, address) => this.count(reason, { address }));
    this.listeners = new HubListeners(this.gate, (reason, address) => this.count(reason, { address }));
  }

  /** `onSummary` gets the rate-limited refusal summaries, for the journal. */
  static async start(
    config: HubConfig,
    auth: Authenticator,
    clock: Clock,
    handlers: ServerHandlers,
    tlsSetup: { material: TlsMaterial | null; trustBundle: string | null },
    onSummary: (text: string) => void,
  ): Promise<HubServer> {
    useCompactMqttEncoder();
    // The gate closes a socket that has not authenticated in connectTimeoutSecs; aedes's own timer is only a
    // backstop behind it (were they equal, both would fire and count one timeout twice).
    const connectTimeout = 2 * config.connectTimeoutSecs * 1000;
    // maxInflightInbound bounds aedes's QoS 2 store per client should a QoS 2 publish ever get past the refusal.
    const broker = await Aedes.createBroker({
      concurrency: config.clientsMax,
      connectTimeout,
      maxInflightInbound: config.inflightMax,
    });
    const server = new HubServer(broker, config, auth, clock, handlers, onSummary);
    server.install();
    const handle = (socket: net.Socket) => {
      const address = socket.remoteAddress;
      const packetBytesMax = config.messageBytesMax + PACKET_OVERHEAD_BYTES_MAX;
      guardSocket(socket, packetBytesMax, (verdict) => {
        server.count(verdict === 'too-big' ? 'packet-size' : 'protocol', { address });
      });
      broker.handle(socket);
    };
    await server.listeners.listen(config, tlsSetup.material, tlsSetup.trustBundle, handle);
    return server;
  }

  get refusals(): ReadonlyMap<Refusal, number> {
    return this.refusalLog.totals;
  }

  /** Sockets open and not yet authenticated, for status. */
  sockets(): { open: number; pending: number; max: number } {
    return { open: this.gate.openSockets, pending: this.gate.pendingSockets, max: this.gate.socketsMax };
  }

  /** New CA trust bundle from a scope sync: new TLS handshakes verify x509-ca children against it. */
  updateTrust(material: TlsMaterial | null, trustBundle: string | null): void {
    this.listeners.updateTrust(material, trustBundle);
  }

  ports(): { tcp: number | null; tls: number | null } {
    return this.listeners.ports();
  }

  connected(): string[] {
    return [...this.states.keys()];
  }

  isConnected(deviceId: string): boolean {
    return this.states.has(deviceId);
  }

  isSubscribed(deviceId: string, filter: string): boolean {
    return this.states.get(deviceId)?.subscriptions.has(filter) ?? false;
  }

  /** Marks an error the hub raised for a refusal it has already counted. */
  private counted(err: Error): Error {
    this.countedErrors.add(err);
    return err;
  }

  count(reason: Refusal, from?: RefusalSource): void {
    this.refusalLog.count(reason, from);
  }

  /** Drops a child's connection (revocation); it may reconnect only if it still authenticates. */
  drop(deviceId: string): void {
    this.states.get(deviceId)?.client.close();
  }

  /**
   * Sends to a connected child. QoS 1 resolves on the child's PUBACK and rejects if it disconnects first;
   * QoS 0 resolves once written. Rejects at once when the child is not connected.
   */
  deliver(deviceId: string, topic: string, payload: Buffer, qos: 0 | 1): Promise<void> {
    const state = this.states.get(deviceId);
    if (state === undefined) return Promise.reject(new Error(`device "${deviceId}" is not connected`));
    return new Promise((resolve, reject) => {
      const packet = { cmd: 'publish' as const, topic, payload, qos, retain: false, dup: false };
      if (qos === 0) return state.client.publish(packet, (err) => (err ? reject(err) : resolve()));
      const client = state.client as Client & { _nextId?: number };
      client.publish(packet, (err) => {
        if (err) reject(err);
      });
      // aedes picks the packet identifier itself (it drops ours) in a setImmediate queued by publish();
      // this one runs right after it, before any PUBACK can arrive, and reads the id it took.
      setImmediate(() => {
        const next = client._nextId;
        if (this.states.get(deviceId) !== state) return reject(new Error(`device "${deviceId}" disconnected`));
        if (typeof next !== 'number') return reject(new Error('aedes no longer exposes _nextId; cannot match PUBACKs'));
        const messageId = next === 1 ? MESSAGE_ID_MAX : next - 1;
        state.acks.get(messageId)?.reject(new Error(`message id ${messageId} reused before its PUBACK`));
        state.acks.set(messageId, { resolve, reject });
      });
    });
  }

  private install(): void {
    const b = this.broker;
    // Before its CONNECT a client has no id (null), and its socket may be gone (no address).
    const from = (client: Client): RefusalSource => ({
      clientId: client.id ?? undefined,
      address: (client.conn as net.Socket | undefined)?.remoteAddress,
    });
    b.preConnect = (client, packet, done) => {
      // The hub's lanes are the session store; an aedes session would re-send what the lanes re-send.
      packet.clean = true;
      // A will would be published after the child is gone, with nobody to answer for it; children get none.
      // It goes here, before aedes stores it: at close aedes authorises it while the client still counts as
      // connected, so no later check can tell it from the child's own publish.
      if (packet.will) {
        packet.will = undefined;
        this.count('will', { clientId: packet.clientId, address: (client.conn as net.Socket).remoteAddress });
      }
      if (this.states.size >= this.config.clientsMax && !this.states.has(packet.clientId)) {
        this.count('clients-max', { clientId: packet.clientId, address: (client.conn as net.Socket).remoteAddress });
        return done(null, false);
      }
      done(null, true);
    };
    b.authenticate = (client, username, password, done) => {
      const socket = client.conn as net.Socket;
      const refusal = this.auth.authenticate({
        clientId: client.id,
        username,
        password,
        tls: socket instanceof tls.TLSSocket ? socket : null,
        remoteAddress: socket.remoteAddress ?? 'unknown',
      });
      if (refusal === null) return done(null, true);
      this.count(refusal, from(client));
      const returnCode = refusal === 'rate-limited' ? 3 : 5;
      const err = Object.assign(this.counted(new Error(`refused: ${refusal}`)), { returnCode });
      done(err as Parameters<typeof done>[0], false);
    };
    b.authorizeSubscribe = (client, sub, done) => {
      if (subscriptionAllowed(client.id, sub.topic)) return done(null, sub);
      this.count('subscribe-acl', from(client));
      done(null, null);
    };
    b.authorizePublish = (client, packet, done) => this.authorizePublish(client, packet as AedesPublishPacket, done);
    b.on('clientReady', (client) => this.onReady(client));
    b.on('clientDisconnect', (client) => this.onGone(client));
    b.on('subscribe', (subs, client) => {
      const state = this.states.get(client.id);
      if (state?.client !== client) return;
      for (const sub of subs) {
        state.subscriptions.add(sub.topic);
        this.handlers.onSubscribed(client.id, sub.topic);
      }
    });
    b.on('unsubscribe', (filters, client) => {
      const state = this.states.get(client.id);
      if (state?.client === client) for (const f of filters) state.subscriptions.delete(f);
    });
    // Malformed packets end the connection inside aedes; here they are only counted, never thrown.
    // A refusal of ours ends the connection through aedes's error path too: it was counted by its reason.
    const protocolError = (client: Client, err: Error) => {
      if (!this.countedErrors.has(err)) this.count('protocol', from(client));
    };
    b.on('clientError', protocolError);
    b.on('connectionError', protocolError);
    type Persistence = { outgoingClearMessageId(c: Client, p: { messageId?: number }): Promise<unknown> };
    const persistence = (b as unknown as { persistence: Persistence }).persistence;
    const clear = persistence.outgoingClearMessageId.bind(persistence);
    // aedes tells nobody which message a PUBACK was for when the session is clean; its persistence hears it.
    persistence.outgoingClearMessageId = (client, packet) => {
      const state = this.states.get(client.id);
      const ack =
        state?.client === client && packet.messageId !== undefined ? state.acks.get(packet.messageId) : undefined;
      if (ack !== undefined) {
        state!.acks.delete(packet.messageId!);
        ack.resolve();
      }
      return clear(client, packet);
    };
  }

  private onReady(client: Client): void {
    const previous = this.states.get(client.id);
    if (previous !== undefined) this.onGone(previous.client);
    this.gate.authenticated(client.conn as net.Socket);
    const throttle = new PublishThrottle(this.config, this.clock.monoMs());
    this.states.set(client.id, { client, inflight: 0, throttle, subscriptions: new Set(), acks: new Map() });
    this.handlers.onConnected(client.id);
  }

  private onGone(client: Client): void {
    const state = this.states.get(client.id);
    if (state?.client !== client) return;
    this.states.delete(client.id);
    for (const ack of state.acks.values()) ack.reject(new Error(`device "${client.id}" disconnected`));
    this.handlers.onDisconnected(client.id);
  }

  private authorizePublish(
    client: Client | null,
    packet: AedesPublishPacket,
    done: (err?: Error | null) => void,
  ): void {
    if (client === null || client.closed) return done(this.counted(new Error('publish from a closed connection')));
    // aedes writes CONNACK before it marks the client connected, and reads the next packets in between: an SDK
    // sends what it queued as soon as CONNACK arrives. Such a publish waits for the connect to finish.
    if (!client.connected) return void client.once('connected', () => this.authorizePublish(client, packet, done));
    const source = { clientId: client.id, address: (client.conn as net.Socket).remoteAddress };
    const refuse = (reason: PublishRefusal, detail: string = reason) => {
      this.count(reason, source);
      done(this.counted(new Error(`publish refused (${detail}) on ${JSON.stringify(packet.topic.slice(0, 200))}`)));
    };
    const state = this.states.get(client.id);
    if (state?.client !== client) return refuse('acl');
    if (packet.qos === 2) return refuse('qos2');
    if (packet.topic.includes('\u0000')) return refuse('malformed-topic');
    const inbound = classifyPublish(client.id, packet.topic);
    if (inbound === null) return refuse('acl');
    if (Buffer.byteLength(packet.topic) + packet.payload.length > this.config.messageBytesMax)
      return refuse('message-size');
    if (state.inflight >= this.config.inflightMax) return refuse('inflight');
    const delayMs = state.throttle.take(this.clock.monoMs());
    if (delayMs === 'refuse') return refuse('rate');
    if (inbound.kind === 'telemetry' && inbound.reservedDropped > 0) this.count('reserved-property', source);
    // aedes would keep retained messages in memory without bound; nothing here is meant to be retained.
    packet.retain = false;
    state.inflight += 1;
    const serve = () => {
      if (client.closed) {
        state.inflight -= 1;
        return done(this.counted(new Error('connection closed while its publish was throttled')));
      }
      this.serve(client.id, state, inbound, packet, done, refuse);
    };
    if (delayMs === 0) serve();
    else setTimeout(serve, delayMs);
  }

  /** Hands an admitted publish on; `done` (the PUBACK) once it was dealt with. */
  private serve(
    id: string,
    state: ClientState,
    inbound: Inbound,
    packet: AedesPublishPacket,
    done: (err?: Error | null) => void,
    refuse: (reason: PublishRefusal, detail: string) => void,
  ): void {
    this.handlers.onPublish(id, inbound, Buffer.from(packet.payload)).then(
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

  async stop(): Promise<void> {
    this.gate.close();
    this.refusalLog.stop();
    for (const state of this.states.values()) state.client.close();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await this.listeners.close();
  }
}
