// The two local sides of `npm run bench -- bridge`: a mosquitto with a bridge to the cloud broker, as many
// sites run it, and the outpost gateway as shipped (dist/outpost.js). Each can be SIGKILLed and started
// again on the same port and data, and is watched for peak RSS and bytes written across both lives.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { scopeTopic } from '../firmware/side-channel.js';
import { freePort, MOSQUITTO_PATH, waitForPort } from '../test/support/brokers.js';
import { processCounters, type ProcessCounters } from './harness.js';
import { childLogin, GATEWAY_ID, NODE_FLAGS, REPO, scopeDocument, seedChildren, startGateway } from './ship.js';
import type { Gateway } from './ship.js';

export interface Child {
  id: string;
  key: string;
}

/** What a side measured: peak RSS over both lives, bytes written to disk summed over them. */
export type SideCounters = ProcessCounters;

export interface LocalSide {
  readonly name: string;
  /** How the side is configured, printed with the results. */
  readonly settings: string;
  readonly port: number;
  /** The children that may connect: ids bench-0.., with their SAS keys where the side checks them. */
  readonly children: Child[];
  start(): Promise<void>;
  /** SIGKILL, counters read just before. */
  kill(): Promise<void>;
  /** The link is back: what the side's operator can do about it (outpost: SIGUSR2 from a modem hook). */
  linkUp(): void;
  /** MQTT connect options of a child at this side. */
  login(child: Child): { clientId: string; username?: string; password?: string };
  /** Stops the side, counters read just before. */
  stop(): Promise<SideCounters>;
}

/** How often a side's /proc counters are read: a process's last figures are what is left when it is killed. */
const COUNTERS_SAMPLE_MS = 100;
/** outpost's window of publishes awaiting PUBACK (its default); the bridge gets the same. */
export const UPLINK_WINDOW_MESSAGES = 100;
/** How long the bridge waits between connect attempts, s: mosquitto's smallest constant restart_timeout. */
const BRIDGE_RESTART_SECS = 1;
/** Queue limits far above the workload, so neither side drops for want of room. */
const BRIDGE_QUEUED_MESSAGES_MAX = 10_000_000;

/** Sums counters over the lives of a side's processes; the current one is sampled, finished ones are kept. */
class LifeCounters {
  private done: SideCounters = { peakRssMb: 0, writeBytes: 0, cancelledWriteBytes: 0 };
  private last: SideCounters | null = null;
  private timer: NodeJS.Timeout | null = null;

  watch(pid: number): void {
    this.timer = setInterval(() => this.read(pid), COUNTERS_SAMPLE_MS);
    this.read(pid);
  }

  /** The process is about to die: read it once more, bank the figures. */
  end(pid: number): void {
    this.read(pid);
    if (this.timer !== null) clearInterval(this.timer);
    if (this.last !== null) {
      this.done = {
        peakRssMb: Math.max(this.done.peakRssMb, this.last.peakRssMb),
        writeBytes: this.done.writeBytes + this.last.writeBytes,
        cancelledWriteBytes: this.done.cancelledWriteBytes + this.last.cancelledWriteBytes,
      };
    }
    this.last = null;
  }

  total(): SideCounters {
    return { ...this.done };
  }

  private read(pid: number): void {
    this.last = processCounters(pid) ?? this.last;
  }
}

/** Writes the bridge's mosquitto.conf: persistence and queues as durable and as roomy as mosquitto allows. */
function bridgeConfig(dir: string, port: number, cloudPort: number): string {
  const lines = [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'user root',
    'persistence true',
    `persistence_location ${dir}/`,
    'persistence_file mosquitto.db',
    // The closest mosquitto comes to outpost's fdatasync before PUBACK: save after every change. It saves
    // the whole in-memory database (write, fsync, rename) from its main loop, after the PUBACKs of that
    // pass went out; there is no fsync per message before its acknowledgement.
    'autosave_on_changes true',
    'autosave_interval 1',
    `max_queued_messages ${BRIDGE_QUEUED_MESSAGES_MAX}`,
    'max_queued_bytes 0',
    `max_inflight_messages ${UPLINK_WINDOW_MESSAGES}`,
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    'connection cloud',
    `address 127.0.0.1:${cloudPort}`,
    'bridge_protocol_version mqttv311',
    'topic devices/# out 1',
    'cleansession false',
    'local_cleansession false',
    `restart_timeout ${BRIDGE_RESTART_SECS}`,
    'start_type automatic',
    'try_private false',
  ];
  const file = join(dir, 'mosquitto.conf');
  writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

/** mosquitto with a bridge to `cloudPort` (the fault proxy in front of the cloud broker). */
export async function mosquittoBridge(dir: string, cloudPort: number, childCount: number): Promise<LocalSide> {
  const port = await freePort();
  const conf = bridgeConfig(dir, port, cloudPort);
  const counters = new LifeCounters();
  let proc: ChildProcess | null = null;
  let output = '';
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    const p = proc;
    proc = null;
    if (p === null || p.pid === undefined) return;
    counters.end(p.pid);
    const exited = once(p, 'exit');
    p.kill(signal);
    await exited;
  };
  return {
    name: 'mosquitto bridge',
    settings:
      `mosquitto ${MOSQUITTO_PATH}: persistence true, autosave_on_changes true + autosave_interval 1 ` +
      '(whole DB saved with fsync after each main-loop pass that changed it, PUBACKs already sent: ' +
      'NO FSYNC PER MESSAGE before its PUBACK), bridge QoS 1, MQTT 3.1.1, cleansession false, ' +
      `local_cleansession false, restart_timeout ${BRIDGE_RESTART_SECS} s, ` +
      `max_inflight_messages ${UPLINK_WINDOW_MESSAGES}, ` +
      `max_queued_messages ${BRIDGE_QUEUED_MESSAGES_MAX}, max_queued_bytes 0`,
    port,
    children: Array.from({ length: childCount }, (_, i) => ({ id: `bench-${i}`, key: '' })),
    async start() {
      const p = spawn(MOSQUITTO_PATH, ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
      p.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      proc = p;
      const exitError = ([code]: unknown[]) => new Error(`mosquitto exited (${String(code)}):\n${output}`);
      const early = once(p, 'exit').then((args) => Promise.reject(exitError(args)));
      early.catch(() => {});
      await Promise.race([waitForPort(port), early]);
      counters.watch(p.pid!);
    },
    kill: () => end('SIGKILL'),
    linkUp() {},
    login: (child) => ({ clientId: child.id }),
    async stop() {
      await end('SIGTERM');
      return counters.total();
    },
  };
}

/**
 * The outpost bundle on an mqtt uplink board (sim board, its devices off so only the children publish).
 * The cloud holds the children's retained scope document, as a site's cloud would: without one, every
 * connect's identity refresh waits out its retained-message wait before the drain starts.
 */
export async function outpostGateway(
  dir: string,
  cloudPort: number,
  childCount: number,
  cloudUrl: string,
): Promise<LocalSide> {
  const port = await freePort();
  const dataDir = join(dir, 'data');
  const children = await seedChildren(dataDir, childCount);
  await mqtt.connectAsync(cloudUrl, { clientId: 'bench-scope', protocolVersion: 4 }).then(async (client) => {
    const doc = JSON.stringify(scopeDocument(children));
    await client.publishAsync(scopeTopic(GATEWAY_ID), doc, { qos: 1, retain: true });
    await client.endAsync();
  });
  cpSync(join(REPO, 'boards'), join(dir, 'boards'), { recursive: true });
  const devices = ['env', 'climate', 'adc', 'door', 'meter', 'relay1', 'status-led', 'gps'];
  const board = {
    board: 'sim',
    identity: { gatewayId: GATEWAY_ID },
    devices: Object.fromEntries(devices.map((id) => [id, { status: 'disabled' }])),
    // The hub's per-child rate limit would pace the children; mosquitto has none, so it is lifted here.
    hub: { publishRatePerSec: 100_000, publishBurst: 100_000 },
    uplink: { protocol: 'mqtt', url: `mqtt://127.0.0.1:${cloudPort}`, inflightMax: UPLINK_WINDOW_MESSAGES },
  };
  writeFileSync(join(dir, 'board.json'), JSON.stringify(board));
  const counters = new LifeCounters();
  let gateway: Gateway | null = null;
  const end = async (how: 'kill' | 'stop'): Promise<void> => {
    const g = gateway;
    gateway = null;
    if (g === null) return;
    counters.end(g.pid);
    await g[how]();
  };
  return {
    name: 'outpost',
    settings:
      `outpost ${join('dist', 'outpost.js')}: ring log fdatasync before each PUBACK (group commit), mqtt ` +
      `uplink MQTT 5, QoS 1, window ${UPLINK_WINDOW_MESSAGES}, default backoff, SIGUSR2 on link-up (modem hook)`,
    port,
    children,
    async start() {
      const args = [...NODE_FLAGS, join(REPO, 'dist/outpost.js'), 'run', '--board', join(dir, 'board.json')];
      const env = { OUTPOST_DATA_DIR: dataDir, OUTPOST_HUB_PORT: String(port) };
      gateway = await startGateway(process.execPath, args, env, dir);
      counters.watch(gateway.pid);
    },
    kill: () => end('kill'),
    linkUp() {
      if (gateway !== null) process.kill(gateway.pid, 'SIGUSR2');
    },
    login: (child) => childLogin(child),
    async stop() {
      await end('stop');
      return counters.total();
    },
  };
}
