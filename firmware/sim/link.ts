import net from 'node:net';

/**
 * The sim board's cellular link, as a TCP relay on loopback between the gateway's uplink and the embedded
 * cloud: while up it relays bytes both ways; when it goes down it resets every relayed connection and refuses
 * new ones, as a modem losing its carrier does. It goes up and down on a cycle (`upSecs`, then `downSecs`),
 * and `toggle()` (SIGUSR1) flips it by hand; the cycle then runs on from the new state.
 */
export interface SimLinkOptions {
  /** Where the cloud listens, on 127.0.0.1. */
  targetPort: number;
  upSecs: number;
  /** 0: no cycle, the link changes only by `toggle()`. */
  downSecs: number;
  /** Told when the link comes back, as a modem hook tells the gateway (no waiting out a reconnect backoff). */
  onUp?: () => void;
}

export interface SimLinkStatus {
  state: 'up' | 'down';
  /** Seconds until the cycle flips the link, or null without a cycle (downSecs 0). */
  nextChangeInSecs: number | null;
  /** Times the link went down since start. */
  drops: number;
}

/** Relayed connections at once: the gateway opens one uplink connection; more means something is looping. */
const SIM_LINK_CONNECTIONS_MAX = 16;

export class SimLink {
  private up = true;
  private drops = 0;
  private changeAtMs: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly pairs = new Set<[net.Socket, net.Socket]>();

  private constructor(
    private readonly server: net.Server,
    private readonly opts: SimLinkOptions,
  ) {}

  static async start(opts: SimLinkOptions): Promise<SimLink> {
    const server = net.createServer();
    const link = new SimLink(server, opts);
    server.on('connection', (socket) => link.relay(socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    link.schedule();
    return link;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  status(): SimLinkStatus {
    const nextChangeInSecs =
      this.changeAtMs === null ? null : Math.max(0, Math.ceil((this.changeAtMs - Date.now()) / 1000));
    return { state: this.up ? 'up' : 'down', nextChangeInSecs, drops: this.drops };
  }

  toggle(): void {
    this.set(!this.up);
  }

  async stop(): Promise<void> {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private set(up: boolean): void {
    if (up === this.up) return;
    this.up = up;
    if (!up) {
      this.drops += 1;
      this.cut();
    }
    this.schedule();
    if (up) this.opts.onUp?.();
  }

  private schedule(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.changeAtMs = null;
    // downSecs 0: no cycle at all; the link changes only by hand (down until flipped back).
    if (this.opts.downSecs === 0) return;
    const secs = this.up ? this.opts.upSecs : this.opts.downSecs;
    this.changeAtMs = Date.now() + secs * 1000;
    this.timer = setTimeout(() => this.set(!this.up), secs * 1000);
    // The cycle alone must not keep a stopping process alive.
    this.timer.unref();
  }

  private relay(socket: net.Socket): void {
    socket.on('error', () => {});
    if (!this.up || this.pairs.size >= SIM_LINK_CONNECTIONS_MAX) {
      socket.resetAndDestroy();
      return;
    }
    const cloud = net.connect(this.opts.targetPort, '127.0.0.1');
    cloud.on('error', () => socket.destroy());
    const pair: [net.Socket, net.Socket] = [socket, cloud];
    this.pairs.add(pair);
    const drop = () => {
      this.pairs.delete(pair);
      socket.destroy();
      cloud.destroy();
    };
    socket.once('close', drop);
    cloud.once('close', drop);
    socket.pipe(cloud);
    cloud.pipe(socket);
  }

  /** A carrier loss: the gateway's side sees a reset, not a polite close. */
  private cut(): void {
    for (const [socket, cloud] of this.pairs) {
      socket.resetAndDestroy();
      cloud.destroy();
    }
    this.pairs.clear();
  }
}
