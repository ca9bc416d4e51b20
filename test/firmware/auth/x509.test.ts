import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { X509Certificate } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import mqtt from 'mqtt';
import { ManualClock } from '../../support/manual-clock.js';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { AedesBroker } from '../../support/brokers.js';
import { HUB_HOST, hubCerts, scopeDocument, type ChildSpec, type HubCerts } from '../../support/hub-fixture.js';
import { createTestCa, type KeyPair } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/** X.509 children over the hub's TLS listener: thumbprints (dates, SHA-256 over SHA-1) and CA chains. */

const DAY_MS = 86_400_000;
/** createTestCa's certificates are valid this long from the moment they are made. */
const CERT_VALIDITY_MS = 2 * DAY_MS;

/** Resolves true once CONNACKed over TLS with `cert`, false when refused. */
async function connects(port: number, certs: HubCerts, deviceId: string, cert: KeyPair): Promise<boolean> {
  return mqtt
    .connectAsync(`mqtts://127.0.0.1:${port}`, {
      clientId: deviceId,
      username: `${HUB_HOST}/${deviceId}/?api-version=2021-04-12`,
      ca: certs.ca.cert,
      cert: cert.cert,
      key: cert.key,
      protocolVersion: 4,
      reconnectPeriod: 0,
      connectTimeout: 5_000,
    })
    .then(
      (c) => c.endAsync().then(() => true),
      () => false,
    );
}

const certPaths = (c: HubCerts) => ({ certPath: c.certPath, keyPath: c.keyPath });
const sha256 = (cert: KeyPair) => new X509Certificate(cert.cert).fingerprint256;
const sha1 = (cert: KeyPair) => new X509Certificate(cert.cert).fingerprint;

async function setup(t: Test, clock: ManualClock) {
  const dir = tempDir(t, 'outpost-x509-');
  const certs = await hubCerts(dir);
  t.teardown(() => certs.ca.dispose());
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const hub = await startHub({
    config: { hub: { tcp: false, tls: { host: '127.0.0.1', port: 0, ...certPaths(certs) } } },
    gatewayId: 'gw-1',
    log,
    dataDir: path.join(dir, 'data'),
    scopeBroker: { url: broker.url },
    clock,
  });
  t.teardown(() => hub.stop());
  const scope = async (version: number, children: ChildSpec[], extra: Record<string, unknown> = {}) => {
    await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', version, children, extra));
    await hub.refreshIdentities();
  };
  return { dir, certs, broker, hub, scope, port: hub.status().ports.tls! };
}

t.test('thumbprint: validity dates checked on the gateway clock; SHA-1 only when the scope says so', async (t) => {
  const clock = new ManualClock({ wallMs: Date.now() });
  const { certs, scope, port } = await setup(t, clock);
  // Not signed by anything the hub trusts: a thumbprint device's certificate is judged by its hash alone.
  const selfCa = await createTestCa();
  t.teardown(() => selfCa.dispose());
  const cam = await selfCa.issue('cam-1');
  const old = await selfCa.issue('cam-old');
  const children = [
    { deviceId: 'cam-1', auth: { type: 'x509-thumbprint', primaryThumbprint: sha256(cam) } },
    { deviceId: 'cam-old', auth: { type: 'x509-thumbprint', primaryThumbprint: sha1(old) } },
  ];
  await scope(1, children);
  t.ok(await connects(port, certs, 'cam-1', cam), 'a registered SHA-256 thumbprint within its dates connects');
  clock.advance(CERT_VALIDITY_MS + DAY_MS);
  t.notOk(await connects(port, certs, 'cam-1', cam), 'the same certificate once expired is refused');
  clock.advance(-(CERT_VALIDITY_MS + 2 * DAY_MS));
  t.notOk(await connects(port, certs, 'cam-1', cam), 'and before its notBefore');
  clock.advance(DAY_MS);
  t.notOk(await connects(port, certs, 'cam-old', old), 'a SHA-1 thumbprint is not compared by default');
  await scope(2, children, { thumbprintSha1: true });
  t.ok(await connects(port, certs, 'cam-old', old), 'with "thumbprintSha1": true in the scope it is');
  t.notOk(await connects(port, certs, 'cam-old', cam), 'another certificate still is not');
});

t.test('x509-ca: chains to the trust bundle connect; without a bundle a CA device is refused', async (t) => {
  const clock = new ManualClock({ wallMs: Date.now() });
  const { certs, hub, scope, port } = await setup(t, clock);
  const deviceCa = await createTestCa();
  t.teardown(() => deviceCa.dispose());
  const plc = await deviceCa.issue('plc-1');
  const children = [{ deviceId: 'plc-1', auth: { type: 'x509-ca' } }];
  await scope(1, children, { trustBundle: deviceCa.cert });
  t.ok(await connects(port, certs, 'plc-1', plc), 'CN = device id, chained to the bundle');
  t.notOk(
    await connects(port, certs, 'plc-1', await certs.ca.issue('plc-1')),
    'a certificate from another CA is refused',
  );
  await scope(2, children);
  t.notOk(await connects(port, certs, 'plc-1', plc), 'no bundle: refused even with the old chain');
  t.ok((hub.status().refusals.certificate ?? 0) >= 2, 'counted as certificate refusals');
});

t.test('x509-ca without a trust bundle: a CA Node trusts by default (a public CA) does not authenticate', async (t) => {
  const dir = tempDir(t, 'outpost-x509-public-');
  const certs = await hubCerts(dir);
  const publicCa = await createTestCa();
  t.teardown(() => Promise.all([certs.ca.dispose(), publicCa.dispose()]));
  const publicCaPath = path.join(dir, 'public-ca.pem');
  await writeFile(publicCaPath, publicCa.cert);
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const plc = { deviceId: 'plc-1', auth: { type: 'x509-ca' } };
  await publishScope({ url: broker.url }, 'gw-1', scopeDocument('gw-1', 1, [plc]));
  const childPath = fileURLToPath(new URL('../../support/hub-child.ts', import.meta.url));
  const child = spawn(
    process.execPath,
    [
      ...process.execArgv.filter((a) => a.includes('@tapjs/typescript')),
      childPath,
      dir,
      broker.url,
      certs.certPath,
      certs.keyPath,
    ],
    {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: publicCaPath },
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  t.teardown(() => child.kill('SIGKILL'));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const { tls: port } = JSON.parse((await lines.next()).value as string) as { tls: number };
  const publicCert = await publicCa.issue('plc-1');
  t.notOk(await connects(port, certs, 'plc-1', publicCert), 'a "public" certificate with CN = plc-1 is refused');
  child.kill('SIGTERM');
  const { refusals } = JSON.parse((await lines.next()).value as string) as { refusals: Record<string, number> };
  t.equal(refusals.certificate, 1, 'counted as a certificate refusal');
  await once(child, 'exit');
});
