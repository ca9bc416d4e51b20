import type net from 'node:net';
import { Aedes, type Client } from 'aedes';
import type { Clock } from '../clock.js';
import type { Authenticator } from '../auth/authenticator.js';
import { useCompactMqttEncoder } from '../mqtt-encoder.js';
import { installAdmission, sourceOf } from './admission.js';
import type { ClientState, ServerHandlers } from './client-state.js';
import type { HubConfig } from './config.js';
import { deliver, hookPubacks } from './delivery.js';
import { ConnectionGate, socketsMax } from './gate.js';
import { HubListeners, type TlsMaterial } from './listeners.js';
import { guardSocket } from './packet-guard.js';
import { RefusalLog, type RefusalSource } from './refusal-log.js';
import { REFUSAL_HINTS, type Refusal } from './refusals.js';
import { PublishThrottle } from './throttle.js';

/**
 * The MQTT server children connect to: aedes on a loopback TCP listener and/or a TLS listener. aedes routes
 * nothing here — every inbound publish is classified, checked against the ACL and handed to `onPublish`,
 * and everything a child receives is sent to it directly by `deliver`. Admission (CONNECT, SUBSCRIBE, PUBLISH)
 * is in admission.ts, outbound delivery and its PUBACKs in delivery.ts; this class owns the connected clients.
 */

export type { ServerHandlers } from './client-state.js';

/**
 * Room in a packet beyond the message (topic + payload, bounded by `messageBytesMax`): fixed header, topic
 * length, packet id and MQTT 5 properties, bytes. Publishes between the two limits still get the counted
 * 'message-size' refusal; past the sum the connection closes before the body is read.
 */
const PACKET_OVERHEAD_BYTES_MAX = 8 * 1024;

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
    return deliver(this.states, deviceId, topic, payload, qos);
  }

  private install(): void {
    const b = this.broker;
    installAdmission(b, {
      config: this.config,
      auth: this.auth,
      clock: this.clock,
      handlers: this.handlers,
      states: this.states,
      count: (reason, from) => this.count(reason, from),
      counted: (err) => this.counted(err),
    });
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
      if (!this.countedErrors.has(err)) this.count('protocol', sourceOf(client));
    };
    b.on('clientError', protocolError);
    b.on('connectionError', protocolError);
    hookPubacks(b, this.states);
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

  async stop(): Promise<void> {
    this.gate.close();
    this.refusalLog.stop();
    for (const state of this.states.values()) state.client.close();
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await this.listeners.close();
  }
}
