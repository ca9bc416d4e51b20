// What the field VM tests share (field.test.ts: the x64 release; arm64.test.ts: the arm64 release): the release
// built for the guest and put in the share folder with the board file and the BME280 stub's registers, the
// "cloud" (a host mosquitto recording what the gateway's uplink delivered), and the install as an operator does it.
import { spawnSync } from 'node:child_process';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import mqtt, { type MqttClient } from 'mqtt';
import { Mosquitto } from '../support/brokers.js';
import { scopeDocument } from '../support/hub-fixture.js';
import { bme280Registers, BME280_ADDRESS } from './bme280-stub.js';
import { GUEST_HOST_ADDRESS, type Vm } from './vm.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
export const NMEA_DIR = join(ROOT, '../shared/testdata/nmea');
export const GATEWAY_ID = 'field-vm';
export const GUEST_HUB_PORT = 1883;
export const GUEST_BROKER_PORT = 1883;
/**
 * The VM's drop-in TimeoutStartSec: node starts 20-100x slower on an emulated CPU than on a Pi (and arm64 under
 * TCG slower than x64), so a start may take longer than the shipped unit's TimeoutStartSec.
 */
export const START_TIMEOUT_SECS = 300;
/** Poll interval of the cloud's wait for a message: a quarter second is nothing against a TCG guest's pace. */
const CLOUD_POLL_MS = 250;

export type ReleaseTarget = 'linux-x64' | 'linux-arm64';

/** Builds the release for `target` with scripts/release.js and copies its tarball into `share`. */
export function releaseIntoShare(target: ReleaseTarget, work: string, share: string): { ok: true } | { error: string } {
  const releaseDir = join(work, 'release');
  const release = spawnSync(process.execPath, [join(ROOT, 'scripts/release.js'), target], {
    cwd: ROOT,
    env: { ...process.env, OUTPOST_RELEASE_DIR: releaseDir },
    encoding: 'utf8',
  });
  if (release.status !== 0) {
    return { error: `release.js ${target} exited ${release.status}: ${release.stderr.slice(-500)}` };
  }
  const tarball = `outpost-${VERSION}-${target}.tar.gz`;
  copyFileSync(join(releaseDir, tarball), join(share, tarball));
  return { ok: true };
}

/**
 * The board file (env, the BME280, on i2c-stub's /dev/i2c-0 unless `bme280` is false; gps on `uartDevice`) and
 * the stub's register script.
 */
export function writeBoard(share: string, uartDevice: string, bme280 = true): void {
  const board = {
    board: 'rpi-base',
    identity: { gatewayId: GATEWAY_ID },
    uplink: { protocol: 'mqtt', url: `mqtt://${GUEST_HOST_ADDRESS}:${GUEST_BROKER_PORT}`, protocolVersion: 5 },
    hub: { tcp: { host: '0.0.0.0', port: GUEST_HUB_PORT } },
    buses: { 'i2c-1': { device: '/dev/i2c-0' }, serial0: { path: uartDevice, baudRate: 9600 } },
    devices: {
      door: { status: 'disabled' },
      relay1: { status: 'disabled' },
      'status-led': { status: 'disabled' },
      env: bme280 ? { pollIntervalMs: 2000 } : { status: 'disabled' },
      gps: { status: 'okay', pollIntervalMs: 2000 },
    },
  };
  writeFileSync(join(share, 'board.json'), `${JSON.stringify(board, null, 2)}\n`);
  writeFileSync(
    join(share, 'bme280.sh'),
    bme280Registers()
      .map(([reg, value]) => `i2cset -y 0 ${BME280_ADDRESS} 0x${reg.toString(16)} 0x${value.toString(16)} b`)
      .join('\n'),
  );
}

export interface CloudMessage {
  topic: string;
  body: string;
}

/** The gateway's cloud: a host mosquitto, the retained scope the gateway reads, and every uplink publish. */
export class Cloud {
  readonly messages: CloudMessage[] = [];

  private constructor(
    readonly broker: Mosquitto,
    private readonly consumer: MqttClient,
  ) {}

  static async start(children: Array<{ deviceId: string; key: string }>): Promise<Cloud> {
    const broker = await Mosquitto.start();
    const consumer = await mqtt.connectAsync(broker.url, { clientId: 'cloud-consumer', reconnectPeriod: 200 });
    const cloud = new Cloud(broker, consumer);
    consumer.on('message', (topic, body) => cloud.messages.push({ topic, body: body.toString() }));
    await consumer.subscribeAsync(`outpost/${GATEWAY_ID}/#`, { qos: 1 });
    await consumer.publishAsync(`outpost/${GATEWAY_ID}/scope`, JSON.stringify(scopeDocument(GATEWAY_ID, 1, children)), {
      qos: 1,
      retain: true,
    });
    return cloud;
  }

  /** The first message that matches, waiting up to `timeoutMs` for it. */
  async sees(what: string, match: (m: CloudMessage) => boolean, timeoutMs: number): Promise<CloudMessage> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find(match);
      if (found) return found;
      if (Date.now() > deadline) {
        throw new Error(`the cloud saw no ${what} within ${timeoutMs} ms (${this.messages.length} messages)`);
      }
      await new Promise((r) => setTimeout(r, CLOUD_POLL_MS));
    }
  }

  async stop(): Promise<void> {
    await this.consumer.endAsync();
    await this.broker.stop();
  }
}

/** Loads i2c-stub at the BME280's address with its registers (volatile: again after every boot). */
export async function loadBme280Stub(vm: Vm): Promise<void> {
  // The agent answers before systemd-modules-load has loaded i2c-stub: modprobe first (a no-op once loaded).
  await vm.mustExec(`modprobe i2c-dev && modprobe i2c-stub chip_addr=${BME280_ADDRESS} && sh /mnt/host/bme280.sh`);
}

/**
 * Installs the release as an operator would: the board file in /etc/outpost, the stub loaded at boot, the
 * tarball unpacked and its install.sh run (which restarts the unit: with Type=notify that returns once READY=1
 * arrived, or fails after TimeoutStartSec). The one change to the shipped unit is the TimeoutStartSec drop-in.
 * Resolves with install.sh's result and, when it failed, the gateway's journal.
 */
export async function installRelease(vm: Vm, target: ReleaseTarget): Promise<{ code: number; output: string }> {
  await vm.mustExec(`echo i2c-stub > /etc/modules-load.d/i2c-stub.conf
  echo 'options i2c-stub chip_addr=${BME280_ADDRESS}' > /etc/modprobe.d/i2c-stub.conf
  echo i2c-dev >> /etc/modules-load.d/i2c-stub.conf
  install -d /etc/outpost && install -m 0640 /mnt/host/board.json /etc/outpost/board.json
  tar -xzf /mnt/host/outpost-${VERSION}-${target}.tar.gz -C /root
  install -d /etc/systemd/system/outpost.service.d
  printf '[Service]\\nTimeoutStartSec=${START_TIMEOUT_SECS}s\\n' > /etc/systemd/system/outpost.service.d/vm.conf`);
  const install = await vm.exec(`/root/outpost-${VERSION}-${target}/install.sh`, (START_TIMEOUT_SECS + 60) * 1000);
  if (install.code === 0) return install;
  const journal = await vm.exec('journalctl -u outpost -o cat --no-pager | tail -60');
  return { code: install.code, output: `${install.output}\ngateway journal:\n${journal.output}` };
}
