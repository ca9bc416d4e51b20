import net from 'node:net';
import { once } from 'node:events';
import mqttPacket from 'mqtt-packet';

/**
 * A loopback proxy in front of a real broker that enforces MQTT 5's Receive Maximum the way the spec says
 * a server must (OASIS MQTT 5.0, 3.3.4: more unacknowledged QoS 1 PUBLISHes than the Receive Maximum it
 * sent is a protocol error, DISCONNECT 0x93). mosquitto advertises `max_inflight_messages` as its Receive
 * Maximum but, for QoS 1, PUBACKs so fast on loopback that it never has to enforce it; brokers that do
 * (HiveMQ, EMQX) drop the connection. The proxy reads both directions with mqtt-packet and counts, as seen
 * on the wire between client and broker: PUBLISHes not yet answered by a PUBACK.
 */
export class ReceiveMaximumProxy {
  /** The most unacknowledged QoS 1 PUBLISHes seen at once on any connection. */
  outstandingMax = 0;
  /** Connections dropped for going over the broker's Receive Maximum. */
  violations = 0;
  /** Per connection, in order: the QoS 1 PUBLISHes the client sent before the broker's first PUBACK. */
  readonly firstRoundTrips: number[] = [];
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<ReceiveMaximumProxy> {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const proxy = new ReceiveMaximumProxy(server, (server.address() as net.AddressInfo).port);
    server.on('connection', (client) => proxy.accept(client, targetPort));
    return proxy;
  }

  private accept(client: net.Socket, targetPort: number): void {
    const upstream = net.connect(targetPort, '127.0.0.1');
    const both = [client, upstream];
    for (const socket of both) {
      this.sockets.add(socket);
      socket.on('error', () => both.forEach((s) => s.destroy()));
      socket.on('close', () => (this.sockets.delete(socket), both.forEach((s) => s.destroy())));
    }
    let receiveMaximum = 65_535;
    let outstanding = 0;
    let sentBeforeFirstPuback: number | null = 0;
    const fromClient = mqttPacket.parser({ protocolVersion: 5 });
    const fromBroker = mqttPacket.parser({ protocolVersion: 5 });
    fromClient.on('packet', (packet) => {
      if (packet.cmd !== 'publish' || packet.qos === 0) return;
      outstanding += 1;
      if (sentBeforeFirstPuback !== null) sentBeforeFirstPuback += 1;
      this.outstandingMax = Math.max(this.outstandingMax, outstanding);
      if (outstanding > receiveMaximum) {
        this.violations += 1;
        both.forEach((s) => s.destroy());
      }
    });
    fromBroker.on('packet', (packet) => {
      if (packet.cmd === 'connack') receiveMaximum = packet.properties?.receiveMaximum ?? 65_535;
      if (packet.cmd !== 'puback') return;
      outstanding = Math.max(0, outstanding - 1);
      if (sentBeforeFirstPuback !== null) this.firstRoundTrips.push(sentBeforeFirstPuback);
      sentBeforeFirstPuback = null;
    });
    client.on('data', (chunk: Buffer) => (fromClient.parse(chunk), upstream.write(chunk)));
    upstream.on('data', (chunk: Buffer) => (fromBroker.parse(chunk), client.write(chunk)));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    this.server.close();
    await once(this.server, 'close');
  }
}
