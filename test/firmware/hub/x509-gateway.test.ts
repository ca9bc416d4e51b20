import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import path from 'node:path';
import azureDevice from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import t from 'tap';
import { startHub } from '../../../firmware/hub/index.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { RingLog } from '../../../firmware/store/log.js';
import { AedesBroker } from '../../support/brokers.js';
import { HUB_HOST, hubCerts, scopeDocument, until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

const { Client, Message, X509AuthenticationProvider } = azureDevice;

/**
 * The Node device SDK's X.509 quirk, documented in firmware/config/README.md: `fromConnectionString` with
 * `x509=true;GatewayHostName=...` drops GatewayHostName (its X509AuthenticationProvider gets host and
 * deviceId only) and dials IoT Hub itself; `fromAuthenticationProvider` with gatewayHostName reaches the gateway.
 */
t.test(
  'X.509 children: the connection-string form bypasses the gateway; the authentication-provider form reaches it',
  async (t) => {
    const dir = tempDir(t, 'outpost-x509-');
    const certs = await hubCerts(dir);
    t.teardown(() => certs.ca.dispose());
    const device = await certs.ca.issue('sensor-9');
    const thumbprint = new X509Certificate(device.cert).fingerprint256;
    const broker = await AedesBroker.start();
    t.teardown(() => broker.stop());
    await publishScope(
      { url: broker.url },
      'gw-1',
      scopeDocument('gw-1', 1, [
        { deviceId: 'sensor-9', auth: { type: 'x509-thumbprint', primaryThumbprint: thumbprint } },
      ]),
    );
    const log = await RingLog.open({ dir: path.join(dir, 'log') });
    t.teardown(() => log.close());
    const hub = await startHub({
      config: { hub: { tcp: false, tls: { port: 0, certPath: certs.certPath, keyPath: certs.keyPath } } },
      gatewayId: 'gw-1',
      log,
      dataDir: path.join(dir, 'data'),
      scopeBroker: { url: broker.url },
    });
    t.teardown(() => hub.stop());
    await hub.refreshIdentities();
    const gatewayHost = `localhost:${hub.status().ports.tls}`;

    // Stands in for IoT Hub: it only records that someone dialled it.
    const dialled: net.Socket[] = [];
    const iotHub = net.createServer((socket) => void dialled.push(socket.on('error', () => {})));
    await new Promise<void>((resolve) => iotHub.listen(0, '127.0.0.1', resolve));
    t.teardown(
      () => new Promise<void>((resolve) => (dialled.forEach((s) => s.destroy()), iotHub.close(() => resolve()))),
    );
    const iotHubHost = `127.0.0.1:${(iotHub.address() as net.AddressInfo).port}`;

    const quirk = Client.fromConnectionString(
      `HostName=${iotHubHost};DeviceId=sensor-9;x509=true;GatewayHostName=${gatewayHost}`,
      Mqtt,
    );
    quirk.setOptions({ cert: device.cert, key: device.key, ca: certs.ca.cert, keepalive: 5 });
    void quirk.open().catch(() => {});
    await until('the SDK to dial HostName', () => dialled.length > 0);
    t.same(hub.status().connected, [], 'the gateway never saw it: GatewayHostName was dropped');
    await quirk.close().catch(() => {});

    // host is the IoT Hub (the scope's hubHostName), as in the child's connection string.
    const provider = new X509AuthenticationProvider({
      host: HUB_HOST,
      deviceId: 'sensor-9',
      gatewayHostName: gatewayHost,
      x509: { cert: device.cert, key: device.key },
    });
    const child = Client.fromAuthenticationProvider(provider, Mqtt);
    await child.setOptions({ ca: certs.ca.cert });
    await child.open();
    t.teardown(() => child.close());
    t.same(hub.status().connected, ['sensor-9'], 'connected through the gateway with its certificate');
    await child.sendEvent(new Message('{"t":1}'));
    t.equal((await (await log.lane('upstream')).read(1, { recordsMax: 10 })).length, 1, 'its telemetry is in the log');
  },
);
