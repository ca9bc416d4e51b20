import { symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { Runtime } from '../../../firmware/runtime.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { hubCerts, newKey, scopeDocument, until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

const { Client, Message } = azureDevice;
const BOARDS_DIR = new URL('../../../boards', import.meta.url).pathname;

/**
 * Issue 19: a child with the standard connection string (HostName=<the IoT Hub>;...;GatewayHostName=<gateway>)
 * signs its SAS token for the IoT Hub's host. The gateway knows that host from its own connection string, so
 * it accepts such tokens even when the scope document carries no hubHostName.
 */
t.test(
  'an SDK child with the standard connection string and GatewayHostName connects; the scope has no hubHostName',
  async (t) => {
    const dir = tempDir(t, 'outpost-audience-');
    const certs = await hubCerts(dir);
    t.teardown(() => certs.ca.dispose());
    const cloud = await IotHubEmulator.start();
    t.teardown(() => cloud.stop());
    const key = newKey();
    const scope = scopeDocument('gw-1', 1, [{ deviceId: 'child-1', key }]) as Record<string, unknown>;
    delete scope['hubHostName'];
    cloud.patchDesired('gw-1', { outpostScope: scope });
    const gatewayConnection = cloud.addDevice('gw-1');
    const hubHost = /HostName=([^;]+)/.exec(gatewayConnection)![1]!;
    writeFileSync(path.join(dir, 'ca.pem'), cloud.ca.cert);
    symlinkSync(BOARDS_DIR, path.join(dir, 'boards'));
    writeFileSync(
      path.join(dir, 'board.json'),
      JSON.stringify({
        board: 'sim',
        identity: { gatewayId: 'gw-1' },
        uplink: {
          protocol: 'azure',
          connectionString: gatewayConnection,
          caFile: 'ca.pem',
          backoff: { baseMs: 50, maxMs: 500 },
        },
        hub: { tcp: false, tls: { port: 0, certPath: certs.certPath, keyPath: certs.keyPath } },
      }),
    );
    const runtime = new Runtime(await loadBoard(path.join(dir, 'board.json'), { files: true }), {
      dataDir: path.join(dir, 'data'),
    });
    await runtime.start();
    t.teardown(() => runtime.stop());
    await until('the scope synced from the gateway twin', () => runtime.status().hub!.identities.devices === 1);

    const tls = runtime.status().hub!.ports.tls;
    const child = Client.fromConnectionString(
      `HostName=${hubHost};DeviceId=child-1;SharedAccessKey=${key};GatewayHostName=localhost:${tls}`,
      Mqtt,
    );
    await child.setOptions({ ca: certs.ca.cert });
    await child.open();
    t.teardown(() => child.close());
    // The hub lists a child once aedes reports it ready, just after its CONNACK went out: not yet at open().
    await until('the child listed', () => runtime.status().hub!.connected.length > 0);
    t.same(runtime.status().hub!.connected, ['child-1'], 'the child is connected through the gateway');
    await child.sendEvent(new Message(JSON.stringify({ hello: 1 })));
    t.same(runtime.status().hub!.refusals, {}, 'no refusal (the audience check passed)');
  },
);
