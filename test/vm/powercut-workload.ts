// The power-cut rig's workload: the x64 release runs in the field VM on a data disk behind qemu's blklogwrites
// driver, children publish QoS 1 through its hub from the host while the uplink is cut, and every PUBACK is
// recorded with the size the write log had when it arrived. test/vm/replay.ts turns the log into crash states.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { freePort, Mosquitto } from '../support/brokers.js';
import { childConnectAttempt, newKey, scopeDocument } from '../support/hub-fixture.js';
import type { Published } from './powercut-check.js';
import type { StoreShape } from './replay.js';
import { dataBasePath, GUEST_HOST_ADDRESS, Vm } from './vm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const GATEWAY_ID = 'powercut-vm';
const GUEST_PORT = 1883;
/** rpi-base's devices that are on by default: none is attached to this VM. */
const BASE_DEVICES = ['door', 'relay1', 'status-led', 'env', 'gps'];
/** The data disk: small, so each crash state is copied, checked by e2fsck and read by debugfs in about a second. */
export const DATA_DISK_MIB = 64;
/**
 * The smallest segments board.json allows, so a workload of a few MiB rolls segments (seal, new file, directory
 * entry) several times: those are the writes a power cut is most likely to tear.
 */
export const STORE_SHAPE: StoreShape = { segmentBytes: 1024 * 1024, recordBytesMax: 65_536 };
/** Body bytes per message: about 1,400 records per segment. */
const BODY_BYTES = 700;
/** The gateway's start under TCG (node loading the bundle on an emulated CPU) plus its first scope read. */
const GATEWAY_READY_WAIT_MS = 240_000;
/** A SIGTERM'd gateway stops within 15 s on any link (README); TCG makes it slower. */
const GATEWAY_STOP_WAIT_MS = 90_000;
/** A child's PUBACK under TCG on a loaded machine; a publish still pending then ends the run. */
const CHILD_CONNECT_TIMEOUT_MS = 30_000;

/** Where the guest mounts the data disk. */
const DATA_MOUNT = '/var/lib/outpost';

export interface WorkloadRun {
  /** Where this gateway kept its store, as a path inside the data disk's file system (debugfs reads it there). */
  dataDir: string;
  published: Published[];
  /** Size of the write log when the children started: crash states before it hold none of this run's messages. */
  startLogByte: number;
  acked: number;
}

/** Builds the x64 release into `share` (the VM's /mnt/host) and returns the tarball's name. */
export function buildRelease(workDir: string, share: string): string {
  const releaseDir = join(workDir, 'release');
  const release = spawnSync(process.execPath, [join(ROOT, 'scripts/release.js'), 'linux-x64'], {
    cwd: ROOT,
    env: { ...process.env, OUTPOST_RELEASE_DIR: releaseDir },
    encoding: 'utf8',
  });
  if (release.status !== 0) throw new Error(`the x64 release did not build: ${release.stderr.slice(-800)}`);
  const tarball = `outpost-${VERSION}-linux-x64.tar.gz`;
  copyFileSync(join(releaseDir, tarball), join(share, tarball));
  return tarball;
}

/**
 * One VM for every workload of a test or benchmark: the data disk's log then covers them all, and each run keeps
 * its store in its own folder, judged against its own messages.
 */
export class PowercutRig {
  readonly logPath: string;
  readonly basePath: string;
  /** The cloud broker runs until a workload cuts the uplink, and again for the next workload's scope read. */
  private brokerUp = true;
  private constructor(
    readonly vm: Vm,
    private readonly broker: Mosquitto,
    private readonly hubPort: number,
    private readonly childKeys: Map<string, string>,
    workDir: string,
    private readonly log: (l: string) => void,
  ) {
    this.logPath = join(workDir, 'data.log');
    this.basePath = dataBasePath(workDir);
  }

  static async start(image: string, workDir: string, children: number, log: (l: string) => void): Promise<PowercutRig> {
    const share = join(workDir, 'share');
    mkdirSync(share, { recursive: true });
    const tarball = buildRelease(workDir, share);
    const childKeys = new Map([...Array(children).keys()].map((i) => [`child-${i + 1}`, newKey()]));
    const board = {
      board: 'rpi-base',
      identity: { gatewayId: GATEWAY_ID },
      uplink: { protocol: 'mqtt', url: `mqtt://${GUEST_HOST_ADDRESS}:${GUEST_PORT}`, protocolVersion: 5 },
      hub: { tcp: { host: '0.0.0.0', port: GUEST_PORT } },
      storage: { ...STORE_SHAPE, quotaBytes: 32 * 1024 * 1024 },
      devices: Object.fromEntries(BASE_DEVICES.map((d) => [d, { status: 'disabled' }])),
    };
    writeFileSync(join(share, 'board.json'), `${JSON.stringify(board, null, 2)}\n`);
    const broker = await Mosquitto.start();
    const hubPort = await freePort();
    const scope = scopeDocument(
      GATEWAY_ID,
      1,
      [...childKeys].map(([deviceId, key]) => ({ deviceId, key })),
    );
    const admin = await mqtt.connectAsync(broker.url, { clientId: 'scope-admin' });
    await admin.publishAsync(`outpost/${GATEWAY_ID}/scope`, JSON.stringify(scope), { qos: 1, retain: true });
    await admin.endAsync();
    let vm: Vm;
    try {
      vm = await Vm.boot(
        {
          image,
          workDir,
          share,
          dataDiskMiB: DATA_DISK_MIB,
          dataLogPath: join(workDir, 'data.log'),
          hostForwards: [{ hostPort: hubPort, guestPort: GUEST_PORT }],
          guestForwards: [{ guestPort: GUEST_PORT, hostPort: broker.port }],
        },
        log,
      );
    } catch (err) {
      await broker.stop();
      throw err;
    }
    const release = `/root/outpost-${VERSION}-linux-x64`;
    await vm.mustExec(`tar -xzf /mnt/host/${tarball} -C /root &&
      install -m 0644 /mnt/host/board.json ${release}/powercut.json`);
    return new PowercutRig(vm, broker, hubPort, childKeys, workDir, log);
  }

  /**
   * Starts a gateway on `dataDir` (inside the data disk), lets it read its children from the cloud broker, cuts
   * the uplink (the broker goes away) and has every child publish for `publishMs`. `noSync` starts the gateway
   * with the store's test-only switch that skips every fsync (the mutation the rig must catch).
   */
  async workload(name: string, publishMs: number, noSync: boolean): Promise<WorkloadRun> {
    const dataDir = `/${name}`;
    if (!this.brokerUp) await this.broker.launch();
    this.brokerUp = true;
    const env = `OUTPOST_DATA_DIR=${DATA_MOUNT}${dataDir}${noSync ? ' OUTPOST_TEST_STORE_NO_SYNC=1' : ''}`;
    await this.vm.mustExec(
      `cd /root/outpost-${VERSION}-linux-x64 && ${env} setsid -f bin/node ` +
        `--max-semi-space-size=2 outpost.js run --board powercut.json > /root/${name}.log 2>&1 < /dev/null`,
    );
    this.log(`powercut: gateway ${name} starting${noSync ? ' (store fsyncs disabled)' : ''}`);
    const clients: Array<[string, MqttClient]> = [];
    for (const [child, key] of this.childKeys) clients.push([child, await this.connect(child, key, name)]);
    await this.broker.halt();
    this.brokerUp = false;
    const startLogByte = statSync(this.logPath).size;
    const published: Published[] = [];
    const deadline = Date.now() + publishMs;
    await Promise.all(clients.map(([child, client]) => this.publishUntil(child, client, deadline, published)));
    for (const [, client] of clients) client.end(true);
    const acked = published.filter((p) => p.ackedAtLogByte !== undefined).length;
    this.log(`powercut: ${name}: ${acked} PUBACKs from ${clients.length} children in ${publishMs} ms`);
    await this.vm.mustExec(
      `pkill -TERM -f 'outpost.js run' || true
for _ in $(seq 1 ${GATEWAY_STOP_WAIT_MS / 500}); do pgrep -f 'outpost.js run' >/dev/null || exit 0; sleep 0.5; done
pkill -KILL -f 'outpost.js run'`,
      GATEWAY_STOP_WAIT_MS + 10_000,
    );
    return { dataDir, published, startLogByte, acked };
  }

  async close(): Promise<void> {
    await this.vm.kill();
    await this.broker.stop();
  }

  private async publishUntil(child: string, client: MqttClient, deadline: number, out: Published[]): Promise<void> {
    const pad = 'x'.repeat(BODY_BYTES);
    for (let n = 0; Date.now() < deadline; n++) {
      const p: Published = { child, n, body: `${child}/${n}/${pad}` };
      out.push(p);
      try {
        await client.publishAsync(`devices/${child}/messages/events/`, p.body, { qos: 1 });
      } catch {
        return;
      }
      p.ackedAtLogByte = statSync(this.logPath).size;
    }
  }

  /** Connects a child once the gateway listens and has its scope; attempts back off like a real device's. */
  private async connect(child: string, key: string, gateway: string): Promise<MqttClient> {
    const deadline = Date.now() + GATEWAY_READY_WAIT_MS;
    let waitMs = 1000;
    for (;;) {
      const { client, error: outcome } = await childConnectAttempt(this.hubPort, child, key, CHILD_CONNECT_TIMEOUT_MS);
      if (outcome === null) return client;
      client.end(true);
      // A gateway that died at start (a bad board, a store error) will not come up: stop waiting at once.
      const alive = await this.vm.exec(`pgrep -f 'outpost.js run' >/dev/null`);
      if (alive.code !== 0 || Date.now() + waitMs > deadline) {
        const out = await this.vm.exec(`tail -30 /root/${gateway}.log`);
        throw new Error(
          `${child} was refused by gateway ${gateway} (${outcome.message}; ` +
            `${alive.code === 0 ? 'still running' : 'not running'}):\n${out.output}`,
        );
      }
      await new Promise((r) => setTimeout(r, waitMs));
      waitMs = Math.min(waitMs * 2, 8000);
    }
  }
}
