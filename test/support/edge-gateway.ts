import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { loadBoard } from '../../firmware/board/board.js';
import { Runtime } from '../../firmware/runtime.js';
import { IotHubEmulator } from './iothub-emulator.js';
import { NO_RETRY } from './iothub-emulator-clients.js';
import { hubCerts, until, type HubCerts } from './hub-fixture.js';
import { tempDir } from './tmp.js';

/**
 * A whole gateway in edge mode (Runtime from a board.json) against the IoT Hub emulator, and real
 * azure-iot-device children reaching IoT Hub through it with GatewayHostName, for the cloud → child tests.
 */

const { Client, ModuleClient } = azureDevice;
export type DeviceClient = InstanceType<typeof Client>;
export type ModuleDeviceClient = InstanceType<typeof ModuleClient>;
const BOARDS_DIR = new URL('../../boards', import.meta.url).pathname;

type Teardown = { teardown(fn: () => unknown): void };

export interface EdgeGateway {
  cloud: IotHubEmulator;
  runtime: Runtime;
  certs: HubCerts;
  /** A child's SDK client with its standard connection string and GatewayHostName, not yet open. */
  child(deviceId: string): Promise<DeviceClient>;
  module(deviceId: string, moduleId: string): Promise<ModuleDeviceClient>;
}

/**
 * `setup` adds to the registry (modules) and may write the gateway's data directory (an older version's
 * records) before the gateway starts; `board` is merged over board.json's top level (devices' options).
 */
export async function edgeGateway(
  t: Teardown,
  children: string[],
  uplink: Record<string, unknown> = {},
  setup?: (cloud: IotHubEmulator, dataDir: string) => void | Promise<void>,
  board: Record<string, unknown> = {},
): Promise<EdgeGateway> {
  const dir = tempDir(t, 'outpost-edge-cloud-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const cloud = await IotHubEmulator.start();
  t.teardown(() => cloud.stop());
  const connections = cloud.createEdgeDevice('gw');
  for (const id of children) {
    cloud.createDevice(id);
    cloud.addChild('gw', id);
  }
  const dataDir = path.join(dir, 'data');
  await setup?.(cloud, dataDir);
  writeEdgeBoard(dir, certs, cloud, connections, uplink, board);
  const runtime = new Runtime(await loadBoard(path.join(dir, 'board.json'), { files: true }), { dataDir });
  await runtime.start();
  t.teardown(() => runtime.stop());
  await until('the children read from IoT Hub', () => (runtime.status().hub?.identities.syncs ?? 0) >= 1);
  const gateway = () => `;GatewayHostName=localhost:${runtime.status().hub!.ports.tls}`;
  return {
    cloud,
    runtime,
    certs,
    async child(deviceId) {
      const client = Client.fromConnectionString(cloud.connectionString(deviceId) + gateway(), Mqtt);
      client.setRetryPolicy(NO_RETRY);
      await client.setOptions({ ca: certs.ca.cert });
      t.teardown(() => client.close().catch(() => {}));
      return client;
    },
    async module(deviceId, moduleId) {
      const client = ModuleClient.fromConnectionString(cloud.connectionString(deviceId, moduleId) + gateway(), Mqtt);
      client.setRetryPolicy(NO_RETRY);
      await client.setOptions({ ca: certs.ca.cert });
      t.teardown(() => client.close().catch(() => {}));
      return client;
    },
  };
}

interface ChildMqttClient {
  handleMessage(packet: unknown, callback: () => void): void;
}

/**
 * Makes a child's SDK hold back its PUBACKs: mqtt.js sends a PUBACK when `handleMessage` calls back, and the
 * SDK cannot delay it. Returns a function that releases the held ones. Private path of the SDK (test only).
 */
export function holdPubacks(client: DeviceClient): () => void {
  type Internals = { _transport: { _mqtt: { _mqttClient: ChildMqttClient } } };
  const inner = (client as unknown as Internals)._transport._mqtt._mqttClient;
  const held: (() => void)[] = [];
  inner.handleMessage = (_packet, callback) => void held.push(callback);
  return () => {
    for (const callback of held.splice(0)) callback();
  };
}

/**
 * Writes an edge-mode board for gateway `gw` into `dir`: the emulator's CA, the `$edgeHub` connection string
 * file, board.json (sim board, azure uplink in edge mode, TLS-only local hub) with `uplink` merged over its
 * uplink section and `board` over its top level.
 */
export function writeEdgeBoard(
  dir: string,
  certs: HubCerts,
  cloud: IotHubEmulator,
  connections: { device: string; edgeHub: string },
  uplink: Record<string, unknown> = {},
  board: Record<string, unknown> = {},
): void {
  writeFileSync(path.join(dir, 'ca.pem'), cloud.ca.cert);
  writeFileSync(path.join(dir, 'edgehub.cs'), `${connections.edgeHub}\n`);
  symlinkSync(BOARDS_DIR, path.join(dir, 'boards'));
  writeFileSync(
    path.join(dir, 'board.json'),
    JSON.stringify({
      board: 'sim',
      identity: { gatewayId: 'gw' },
      uplink: {
        protocol: 'azure',
        connectionString: connections.device,
        caFile: 'ca.pem',
        azure: { edgeHubConnectionStringFile: 'edgehub.cs' },
        backoff: { baseMs: 50, maxMs: 500 },
        ...uplink,
      },
      hub: { tcp: false, tls: { port: 0, certPath: certs.certPath, keyPath: certs.keyPath } },
      ...board,
    }),
  );
}
