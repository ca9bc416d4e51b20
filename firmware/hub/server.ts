import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { Aedes, type AedesPublishPacket, type Client } from 'aedes';
import type { Clock } from '../clock.js';
import type { Authenticator, AuthRefusal } from '../auth/authenticator.js';
import { useCompactMqttEncoder } from '../mqtt-encoder.js';
import { StoreError } from '../store/errors.js';
import type { HubConfig } from './config.js';
import { guardSocket } from './packet-guard.js';
import { classifyPublish, subscriptionAllowed, type Inbound } from './topics.js';

/**
 * The MQTT server children connect to: aedes on a loopback TCP listener and/or a TLS listener. aedes routes
 * nothing here — every inbound publish is classified, checked against the ACL and handed to `onPublish`,
 * and everything a child receives is sent to it directly by `deliver`.
 */

export type PublishRefusal = 'acl' | 'message-size' | 'inflight' | 'rate' | 'store' | 'will';
/** A packet whose fixed header announced more than `packetBytesMax`; the connection is closed unread. */
export type PacketRefusal = 'packet-size';
export type ConnectRefusal = AuthRefusal | 'clients-max';
export type Refusal = ConnectRefusal | PublishRefusal | PacketRefusal | 'subscribe-acl' | 'protocol' | 'tls';

export interface ServerHandlers {
  /** Must resolve only when the publish has been dealt with (telemetry: durable); then it is PUBACKed. */
  onPublish(deviceId: string, inbound: Inbound, payload: Buffer): Promise<void>;
  onConnected(deviceId: string): void;
  onDisconnected(deviceId: string): void;
  onSubscribed(deviceId: string, filter: string): void;
}

export interface TlsMaterial {
  cert: string;
  key: string;
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
  tokens: number;
  refillMonoMs: number;
  subscriptions: Set<string>;
  acks: Map<number, { resolve: () => void; reject: (err: Error) => void }>;
}

export class HubServer {
  readonly refusals = new Map<Refusal, number>();
  private readonly states = new Map<string, ClientState>();
  private tcpServer: net.Server | null = null;
  private tlsServer: tls.Server | null = null;

  constructor(
    private readonly broker: Aedes,
    private readonly config: HubConfig,
    private readonly auth: Authenticator,
    private readonly clock: Clock,
    private readonly handlers: ServerHandlers,
  ) {}

  static async start(config: HubConfig, auth: Authenticator, clock: Clock, handlers: ServerHandlers, tlsMaterial: TlsMaterial | null, trustBundle: string | null): Promise<HubServer> {
    useCompactMqttEncoder();
    const broker = await Aedes.createBroker({ concurrency: config.clientsMax, connectTimeout: 10_000 });
    const server = new HubServer(broker, config, auth, clock, handlers);
    server.install();
    const handle = (socket: net.Socket) => {
      guardSocket(socket, config.messageBytesMax + PACKET_OVERHEAD_BYTES_MAX, (verdict) => server.count(verdict === 'too-big' ? 'packet-size' : 'protocol'));
      broker.handle(socket);
    };
    if (config.tcp !== null) {
      server.tcpServer = net.createServer(handle);
      server.tcpServer.on('error', () => server.count('protocol'));
      server.tcpServer.listen(config.tcp.port, config.tcp.host);
      await once(server.tcpServer, 'listening');
    }
    if (config.tls !== null && tlsMaterial !== null) {
      server.tlsServer = tls.createServer(server.tlsOptions(tlsMaterial, trustBundle), handle);
      server.tlsServer.on('tlsClientError', () => server.count('tls'));
      server.tlsServer.listen(config.tls.port, config.tls.host);
      await once(server.tlsServer, 'listening');
    }
    return server;
  }

  /**
   * Client certificates are requested but judged by the authenticator, so SAS children need none. `ca` is
   * always given: without it Node verifies against its public roots, and any public CA's certificate with
   * the right CN would pass as an x509-ca child. An empty list trusts nothing.
   */
  private tlsOptions(material: TlsMaterial, trustBundle: string | null): tls.SecureContextOptions & tls.TlsOptions {
    const { cert, key } = material;
    return { cert, key, requestCert: true, rejectUnauthorized: false, ca: trustBundle ?? [] };
  }

  /** New CA trust bundle from a scope sync: new TLS handshakes verify x509-ca children against it. */
  updateTrust(material: TlsMaterial | null, trustBundle: string | null): void {
    if (this.tlsServer !== null && material !== null) this.tlsServer.setSecureContext(this.tlsOptions(material, trustBundle));
  }

  ports(): { tcp: number | null; tls: number | null } {
    const port = (s: net.Server | null) => (s === null ? null : (s.address() as net.AddressInfo).port);
    return { tcp: port(this.tcpServer), tls: port(this.tlsServer) };
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

  count(reason: Refusal): void {
    this.refusals.set(reason, (this.refusals.get(reason) ?? 0) + 1);
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
    b.preConnect = (_client, packet, done) => {
      // The hub's lanes are the session store; an aedes session would re-send what the lanes re-send.
      packet.clean = true;
      if (this.states.size >= this.config.clientsMax && !this.states.has(packet.clientId)) {
        this.count('clients-max');
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
      this.count(refusal);
      const err = Object.assign(new Error(`refused: ${refusal}`), { returnCode: refusal === 'rate-limited' ? 3 : 5 });
      done(err as Parameters<typeof done>[0], false);
    };
    b.authorizeSubscribe = (client, sub, done) => {
      if (subscriptionAllowed(client.id, sub.topic)) return done(null, sub);
      this.count('subscribe-acl');
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
    b.on('clientError', () => this.count('protocol'));
    b.on('connectionError', () => this.count('protocol'));
    type Persistence = { outgoingClearMessageId(c: Client, p: { messageId?: number }): Promise<unknown> };
    const persistence = (b as unknown as { persistence: Persistence }).persistence;
    const clear = persistence.outgoingClearMessageId.bind(persistence);
    // aedes tells nobody which message a PUBACK was for when the session is clean; its persistence hears it.
    persistence.outgoingClearMessageId = (client, packet) => {
      const state = this.states.get(client.id);
      const ack = state?.client === client && packet.messageId !== undefined ? state.acks.get(packet.messageId) : undefined;
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
    const burst = this.config.publishBurst;
    this.states.set(client.id, { client, inflight: 0, tokens: burst, refillMonoMs: this.clock.monoMs(), subscriptions: new Set(), acks: new Map() });
    this.handlers.onConnected(client.id);
  }

  private onGone(client: Client): void {
    const state = this.states.get(client.id);
    if (state?.client !== client) return;
    this.states.delete(client.id);
    for (const ack of state.acks.values()) ack.reject(new Error(`device "${client.id}" disconnected`));
    this.handlers.onDisconnected(client.id);
  }

  /** Token bucket per child on the monotonic clock: `publishBurst` at once, `publishRatePerSec` sustained. */
  private takeToken(state: ClientState): boolean {
    const now = this.clock.monoMs();
    state.tokens = Math.min(this.config.publishBurst, state.tokens + ((now - state.refillMonoMs) * this.config.publishRatePerSec) / 1000);
    state.refillMonoMs = now;
    if (state.tokens < 1) return false;
    state.tokens -= 1;
    return true;
  }

  private authorizePublish(client: Client | null, packet: AedesPublishPacket, done: (err?: Error | null) => void): void {
    const refuse = (reason: PublishRefusal, detail: string = reason) => {
      this.count(reason);
      done(new Error(`publish refused (${detail}) on ${JSON.stringify(packet.topic.slice(0, 200))}`));
    };
    // A last will is published after the child is gone, with nobody to tell; children get none.
    if (client === null || !client.connected) return refuse('will');
    const state = this.states.get(client.id);
    if (state?.client !== client) return refuse('acl');
    const inbound = classifyPublish(client.id, packet.topic);
    if (inbound === null) return refuse('acl');
    if (Buffer.byteLength(packet.topic) + packet.payload.length > this.config.messageBytesMax) return refuse('message-size');
    if (state.inflight >= this.config.inflightMax) return refuse('inflight');
    if (!this.takeToken(state)) return refuse('rate');
    // aedes would keep retained messages in memory without bound; nothing here is meant to be retained.
    packet.retain = false;
    state.inflight += 1;
    this.handlers.onPublish(client.id, inbound, Buffer.from(packet.payload)).then(
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
    for (const state of this.states.values()) state.client.close();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    for (const s of [this.tcpServer, this.tlsServer]) {
      if (s === null) continue;
      s.close();
      await once(s, 'close');
    }
  }
}
