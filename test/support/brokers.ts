import net from 'node:net';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Aedes, type AedesOptions } from 'aedes';

/** Real MQTT brokers on loopback for tests: the mosquitto Debian package, and aedes in-process. */

export const MOSQUITTO_PATH = '/usr/sbin/mosquitto';
/** How long a broker may take to accept its first connection before the test fails. */
const BROKER_START_TIMEOUT_MS = 10_000;
const BROKER_POLL_MS = 25;
/** mosquitto gets this long to save its persistence file on SIGTERM before it is killed. */
const BROKER_STOP_TIMEOUT_MS = 5_000;
/** Attempts at binding a port that was free a moment ago (another process may take it in between). */
const PORT_ATTEMPTS_MAX = 5;

export interface TestBroker {
  readonly port: number;
  /** `mqtt://127.0.0.1:<port>` */
  readonly url: string;
  stop(): Promise<void>;
}

/** Ask the kernel for a free loopback port; mosquitto cannot listen on port 0 and report it. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}

/** Resolves once something accepts TCP connections on the port; rejects after `timeoutMs`. */
export async function waitForPort(port: number, timeoutMs = BROKER_START_TIMEOUT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => (socket.destroy(), resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(BROKER_POLL_MS);
  }
}

export interface MosquittoOptions {
  /** Keep sessions and queued messages in `<dir>/mosquitto.db` across `restart()`. Default true. */
  persistence?: boolean;
  /** More mosquitto.conf lines (limits such as `max_packet_size 2000`). */
  extraConfig?: string[];
  /** An ACL file's lines (e.g. `topic write a/#`); without them every client may use every topic. */
  acl?: string[];
}

/** A mosquitto process with its config and persistence file in a temp dir that outlives `restart()`. */
export class Mosquitto implements TestBroker {
  private child: ChildProcess | null = null;
  private output = '';

  private constructor(
    readonly dir: string,
    readonly port: number,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(opts: MosquittoOptions = {}): Promise<Mosquitto> {
    const dir = await mkdtemp(path.join(tmpdir(), 'outpost-mosquitto-'));
    for (let attempt = 1; ; attempt += 1) {
      const broker = new Mosquitto(dir, await freePort());
      await broker.writeConfig(opts);
      try {
        await broker.launch();
        return broker;
      } catch (err) {
        if (attempt >= PORT_ATTEMPTS_MAX) {
          await rm(dir, { recursive: true, force: true });
          throw err;
        }
      }
    }
  }

  /** Everything mosquitto printed, for failure messages. */
  get log(): string {
    return this.output;
  }

  /** SIGTERM (mosquitto saves its persistence file), then start again on the same port and dir. */
  async restart(): Promise<void> {
    await this.halt();
    await this.launch();
  }

  /** SIGKILL: no chance to save; what survives is what was saved before. */
  async kill(): Promise<void> {
    await this.halt('SIGKILL');
  }

  /** Start again after `kill()` / `halt()`. */
  async launch(): Promise<void> {
    const child = spawn(MOSQUITTO_PATH, ['-c', path.join(this.dir, 'mosquitto.conf')], { stdio: 'pipe' });
    this.child = child;
    child.stdout.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.output += d.toString()));
    const exited = once(child, 'exit').then(([code]) => {
      throw new Error(`mosquitto exited with ${code} before listening:\n${this.output}`);
    });
    // Only the race below cares about an early exit; a later one (halt) must not become unhandled.
    exited.catch(() => {});
    try {
      await Promise.race([waitForPort(this.port), exited]);
    } catch (err) {
      await this.halt('SIGKILL');
      throw err;
    }
  }

  async halt(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.child;
    this.child = null;
    if (child === null || child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), BROKER_STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  async stop(): Promise<void> {
    await this.halt();
    await rm(this.dir, { recursive: true, force: true });
  }

  async config(): Promise<string> {
    return readFile(path.join(this.dir, 'mosquitto.conf'), 'utf8');
  }

  private async writeConfig(opts: MosquittoOptions): Promise<void> {
    const persistence = opts.persistence ?? true;
    if (opts.acl !== undefined) await writeFile(path.join(this.dir, 'acl'), opts.acl.join('\n') + '\n');
    const lines = [
      `listener ${this.port} 127.0.0.1`,
      'allow_anonymous true',
      // As root, mosquitto would switch to the `mosquitto` user, which cannot write to our temp dir.
      'user root',
      `persistence ${persistence}`,
      `persistence_location ${this.dir}/`,
      'persistence_file mosquitto.db',
      // The soak test queues tens of thousands of QoS 1 messages for a subscriber that is away.
      'max_queued_messages 0',
      'max_inflight_messages 0',
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      ...(opts.acl === undefined ? [] : [`acl_file ${this.dir}/acl`]),
      ...(opts.extraConfig ?? []),
    ];
    await writeFile(path.join(this.dir, 'mosquitto.conf'), lines.join('\n') + '\n');
  }
}

/** aedes in this process on an ephemeral loopback port (MQTT 3.1.1 only: aedes 1.x has no MQTT 5). */
export class AedesBroker implements TestBroker {
  private constructor(
    readonly broker: Aedes,
    private readonly server: net.Server,
    readonly port: number,
  ) {}

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  static async start(options: AedesOptions = {}): Promise<AedesBroker> {
    const broker = await Aedes.createBroker(options);
    const server = net.createServer((socket) => broker.handle(socket));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    return new AedesBroker(broker, server, (server.address() as net.AddressInfo).port);
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.broker.close(() => resolve()));
    this.server.close();
    // Connections aedes has already closed still hold the server open until their sockets finish.
    await once(this.server, 'close');
  }
}
