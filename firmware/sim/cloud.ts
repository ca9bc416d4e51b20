import net from 'node:net';
import { Aedes } from 'aedes';
import mqtt, { type MqttClient } from 'mqtt';
import { SimLink, type SimLinkStatus } from './link.js';
import { SIM_TELEMETRY_TOPIC_TEMPLATE, telemetryFilter } from '../side-channel.js';

/**
 * The sim board's embedded "cloud": a real MQTT broker (aedes) on loopback, a consumer subscribed to the
 * gateway's telemetry that counts what arrives and checks its order, and between the gateway and the broker
 * a SimLink that drops on a cycle. `npm start` starts and stops it with the gateway, so a newcomer sees the
 * backlog grow while the link is down and drain, in stored order, when it returns. Only the sim board may
 * use it (uplink protocol "sim", checked by firmware/uplink/config.ts).
 */
export interface SimCloudOptions {
  gatewayId: string;
  linkUpSecs: number;
  linkDownSecs: number;
  onLinkUp?: () => void;
}

export interface SimCloudStatus {
  link: SimLinkStatus;
  /** The broker itself, on the cloud side of the link: `mosquitto_sub -L <url>/outpost/#` watches what arrives. */
  brokerUrl: string;
  /** Distinct messages the consumer received. */
  received: number;
  /** Messages received again (at-least-once: a publish in flight when the link dropped goes up again). */
  repeats: number;
  /** Messages that arrived after a later one: should stay 0, the pump sends in stored order. */
  outOfOrder: number;
  lastSeq: number | null;
}

/** Topic the gateway publishes to (see side-channel.ts). */
export const SIM_TOPIC_TEMPLATE = SIM_TELEMETRY_TOPIC_TEMPLATE;
/** Sequence numbers remembered to tell a repeat from a message out of order; older ones are forgotten. */
const SEEN_SEQS_MAX = 4096;

export class SimCloud {
  private received = 0;
  private repeats = 0;
  private outOfOrder = 0;
  private lastSeq: number | null = null;
  private readonly seen = new Set<number>();

  private constructor(
    private readonly broker: Aedes,
    private readonly server: net.Server,
    private readonly consumer: MqttClient,
    private readonly link: SimLink,
  ) {}

  static async start(opts: SimCloudOptions): Promise<SimCloud> {
    const broker = await Aedes.createBroker();
    const server = net.createServer((socket) => broker.handle(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const brokerPort = (server.address() as net.AddressInfo).port;
    // The consumer sits on the cloud side of the link: it stays connected while the gateway's link is down.
    const consumer = await mqtt.connectAsync(`mqtt://127.0.0.1:${brokerPort}`, {
      protocolVersion: 4,
      reconnectPeriod: 0,
      clientId: 'sim-cloud-consumer',
    });
    const link = await SimLink.start({
      targetPort: brokerPort,
      upSecs: opts.linkUpSecs,
      downSecs: opts.linkDownSecs,
      onUp: opts.onLinkUp,
    });
    const cloud = new SimCloud(broker, server, consumer, link);
    consumer.on('message', (topic) => cloud.count(topic));
    await consumer.subscribeAsync(telemetryFilter(opts.gatewayId), { qos: 1 });
    return cloud;
  }

  /** Where the gateway's uplink connects: the link's end, not the broker itself. */
  get url(): string {
    return `mqtt://127.0.0.1:${this.link.port}`;
  }

  status(): SimCloudStatus {
    const brokerPort = (this.server.address() as net.AddressInfo | null)?.port ?? 0;
    return {
      link: this.link.status(),
      brokerUrl: `mqtt://127.0.0.1:${brokerPort}`,
      received: this.received,
      repeats: this.repeats,
      outOfOrder: this.outOfOrder,
      lastSeq: this.lastSeq,
    };
  }

  toggleLink(): void {
    this.link.toggle();
  }

  async stop(): Promise<void> {
    await this.link.stop();
    await this.consumer.endAsync(true);
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private count(topic: string): void {
    const seq = Number(topic.slice(topic.lastIndexOf('/') + 1));
    if (!Number.isSafeInteger(seq)) return;
    if (this.seen.has(seq)) {
      this.repeats += 1;
      return;
    }
    if (this.lastSeq !== null && seq < this.lastSeq) this.outOfOrder += 1;
    this.received += 1;
    this.lastSeq = Math.max(seq, this.lastSeq ?? seq);
    this.seen.add(seq);
    if (this.seen.size > SEEN_SEQS_MAX) this.seen.delete(this.seen.values().next().value!);
  }
}
