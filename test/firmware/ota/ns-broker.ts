import { Aedes } from 'aedes';
import { once } from 'node:events';
import net from 'node:net';

/**
 * The cloud of the OTA scenario: aedes on a fixed loopback port that can go away and come back like a link
 * (connections refused while stopped), recording the `{seq}` of every telemetry topic it receives.
 */
export class LinkBroker {
  private broker: Aedes | null = null;
  private server: net.Server | null = null;
  private readonly sockets = new Set<net.Socket>();
  private readonly received: number[] = [];

  constructor(private readonly port: number) {}

  async start(): Promise<void> {
    const broker = await Aedes.createBroker();
    broker.on('publish', (packet) => {
      const seq = /^t\/[^/]+\/[^/]+\/(\d+)$/.exec(packet.topic)?.[1];
      if (seq !== undefined) this.received.push(Number(seq));
    });
    const server = net.createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      broker.handle(socket);
    });
    server.listen(this.port, '127.0.0.1');
    await once(server, 'listening');
    [this.broker, this.server] = [broker, server];
  }

  async stop(): Promise<void> {
    const { broker, server } = this;
    if (broker === null || server === null) return;
    [this.broker, this.server] = [null, null];
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => broker.close(() => resolve()));
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  seqs(): number[] {
    return [...this.received];
  }
}
