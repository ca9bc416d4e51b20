import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { loadBoard } from '../../firmware/board/board.js';
import { Runtime, type RuntimeOptions } from '../../firmware/runtime.js';
import { DpsEmulator } from './dps-emulator.js';
import { ID_SCOPE, randomKey } from './dps-fixture.js';
import { FaultProxy } from './fault-proxy.js';
import { dpsBinding } from './iothub-dps-binding.js';
import { IotHubEmulator } from './iothub-emulator.js';
import { NO_RETRY } from './iothub-emulator-clients.js';
import { hubCerts, type HubCerts } from './hub-fixture.js';
import { tempDir } from './tmp.js';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * A fleet gateway in edge mode that knows only its DPS group enrollment (capabilities.iotEdge): the whole
 * Runtime from a board.json, against a DPS emulator and two IoT Hub emulators. Hub A is reached through a
 * fault proxy (DPS assigns the proxy's address), so a test can take the gateway offline; real azure-iot-device
 * children reach the cloud through the gateway's local hub with their standard connection strings.
 */

const { Client } = azureDevice;
export type ChildClient = InstanceType<typeof Client>;
const BOARDS_DIR = new URL('../../boards', import.meta.url).pathname;
export const GATEWAY_ID = 'gw';

type Teardown = { teardown(fn: () => unknown): void };

export interface DpsEdgeWorld {
  dps: DpsEmulator;
  hubA: IotHubEmulator;
  hubB: IotHubEmulator;
  /** In front of hub A: `refuse()` takes the gateway offline, `pass()` brings the link back. */
  proxyA: FaultProxy;
  /** The host names DPS assigns (hub A's is the proxy's). */
  hostA: string;
  hostB: string;
  certs: HubCerts;
  /** The gateway's directory: board.json, its files (ca.pem, group.key or gw.pem/gw.key) and data/. */
  dir: string;
  /** Starts a Runtime on the (kept) data directory. */
  boot(options?: Pick<RuntimeOptions, 'provisioningOverrides'>): Promise<Runtime>;
  /** A child's SDK client through `runtime`'s local hub, its connection string naming `hostName`. */
  child(runtime: Runtime, hub: IotHubEmulator, deviceId: string, hostName: string): Promise<ChildClient>;
}

/**
 * `mode`: board.json's uplink.azure.mode ("device": children from the gateway twin's outpostScope).
 * `attestation`: a symmetric-key group enrollment (the group key file), or an X.509 group enrollment of hub A's
 * CA (a certificate with CN = the gateway id and its key; DPS then assigns hub A, the one that trusts it).
 */
export async function dpsEdgeWorld(
  t: Teardown,
  mode: 'edge' | 'device' = 'edge',
  attestation: 'sas' | 'x509' = 'sas',
): Promise<DpsEdgeWorld> {
  const dir = tempDir(t, 'outpost-dps-edge-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const hubA = await IotHubEmulator.start();
  t.teardown(() => hubA.stop());
  const hubB = await IotHubEmulator.start();
  t.teardown(() => hubB.stop());
  const proxyA = await FaultProxy.start({ targetPort: hubA.port });
  t.teardown(() => proxyA.close());
  const hostA = `localhost:${proxyA.port}`;
  hubA.allowHostName(hostA);
  const dps = await DpsEmulator.start({
    idScope: ID_SCOPE,
    hubs: [{ ...dpsBinding(hubA), hostName: hostA }, dpsBinding(hubB)],
  });
  t.teardown(() => dps.stop().catch(() => {}));
  const groupKey = randomKey();
  const iotEdge = mode === 'edge';
  if (attestation === 'sas') {
    dps.addEnrollment({ kind: 'symmetric-group', name: 'edge-gws', groupKey, capabilities: { iotEdge } });
    writeFileSync(path.join(dir, 'group.key'), groupKey, { mode: 0o600 });
  } else {
    const caCert = hubA.ca.cert;
    dps.addEnrollment({ kind: 'x509-group', name: 'edge-gws-x509', caCert, hub: hostA, capabilities: { iotEdge } });
    const issued = await hubA.ca.issue(GATEWAY_ID);
    writeFileSync(path.join(dir, 'gw.pem'), issued.cert);
    writeFileSync(path.join(dir, 'gw.key'), issued.key, { mode: 0o600 });
  }
  writeFileSync(path.join(dir, 'ca.pem'), dps.ca.cert + hubA.ca.cert + hubB.ca.cert);
  symlinkSync(BOARDS_DIR, path.join(dir, 'boards'));
  writeFileSync(path.join(dir, 'board.json'), JSON.stringify(boardJson(dps, certs, mode, attestation)));
  async function boot(options: Pick<RuntimeOptions, 'provisioningOverrides'> = {}): Promise<Runtime> {
    const runtime = new Runtime(await loadBoard(path.join(dir, 'board.json'), { files: true }), {
      dataDir: path.join(dir, 'data'),
      ...options,
    });
    await runtime.start();
    t.teardown(() => runtime.stop());
    return runtime;
  }
  async function child(runtime: Runtime, hub: IotHubEmulator, deviceId: string, hostName: string) {
    const gateway = `;GatewayHostName=localhost:${runtime.status().hub!.ports.tls}`;
    const client = Client.fromConnectionString(hub.connectionString(deviceId, undefined, hostName) + gateway, Mqtt);
    client.setRetryPolicy(NO_RETRY);
    await client.setOptions({ ca: certs.ca.cert });
    t.teardown(() => client.close().catch(() => {}));
    return client;
  }
  return { dps, hubA, hubB, proxyA, hostA, hostB: hubB.hostName, certs, dir, boot, child };
}

function boardJson(
  dps: DpsEmulator,
  certs: HubCerts,
  mode: 'edge' | 'device',
  attestation: 'sas' | 'x509',
): Record<string, unknown> {
  const credentials = attestation === 'sas' ? { groupKeyFile: 'group.key' } : { certPath: 'gw.pem', keyPath: 'gw.key' };
  return {
    board: 'sim',
    identity: { gatewayId: GATEWAY_ID },
    uplink: {
      protocol: 'azure',
      caFile: 'ca.pem',
      backoff: { baseMs: 50, maxMs: 500 },
      azure: { mode },
      provisioning: {
        globalEndpoint: dps.endpoint,
        idScope: ID_SCOPE,
        registrationId: GATEWAY_ID,
        ...credentials,
      },
    },
    hub: { tcp: false, tls: { port: 0, certPath: certs.certPath, keyPath: certs.keyPath } },
  };
}

/** Opening attempts: the local hub refuses an id it does not know yet, and reads the scope for it then. */
const CHILD_OPEN_ATTEMPTS_MAX = 20;

export async function openChild(runtime: Runtime, child: ChildClient): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      return void (await child.open());
    } catch (err) {
      if (attempt >= CHILD_OPEN_ATTEMPTS_MAX) {
        throw new Error(`child refused: ${JSON.stringify(runtime.status().hub?.refusals)}`, { cause: err });
      }
      await sleep(250);
    }
  }
}
