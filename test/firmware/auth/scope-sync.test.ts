import t, { type Test } from 'tap';
import path from 'node:path';
import { ManualClock } from '../../support/manual-clock.js';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { createTransport } from '../../../firmware/uplink/transports.js';
import type { UplinkTransport } from '../../../firmware/uplink/types.js';
import { publishScope } from '../../../firmware/ops/scope-cli.js';
import { Mosquitto } from '../../support/brokers.js';
import { HookList, mqttChild, newKey, sasPassword, scopeDocument, until } from '../../support/hub-fixture.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { tempDir } from '../../support/tmp.js';

/** Identity sync against real brokers: live revocation over mqtt, and what unknown device ids may cost. */

/** A revocation must reach a connected child within about a second; the old hourly read took up to an hour. */
const REVOKE_WAIT_MS = 5_000;
const MINUTE_MS = 60_000;

async function hubWith(t: Test, gatewayId: string, extra: { scopeBroker?: { url: string }; clock?: ManualClock }) {
  const dir = tempDir(t);
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const hooks = new HookList();
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false } },
    gatewayId,
    log,
    dataDir: path.join(dir, 'data'),
    uplink: hooks,
    ...extra,
  });
  t.teardown(() => hub.stop());
  const identities = (transport: UplinkTransport) => hooks.hooks.find((h) => h.name === 'identities')!.run(transport);
  return { hub, identities };
}

/** Tries to connect as a device the gateway does not know; the hub refuses it. */
async function unknownConnect(t: Test, port: number, id: string): Promise<void> {
  await t.rejects(mqttChild(port, id, sasPassword(id, newKey())), `unknown "${id}" refused`);
}

t.test('mqtt uplink: a scope update disabling a connected child drops it; unknown ids make no reads', async (t) => {
  const mosquitto = await Mosquitto.start({ persistence: false });
  t.teardown(() => mosquitto.stop());
  const key = newKey();
  await publishScope({ url: mosquitto.url }, 'gw-live', scopeDocument('gw-live', 1, [{ deviceId: 'child-a', key }]));
  // Real wall time: the children's SAS tokens expire an hour from now, within the hub's token lifetime cap.
  const clock = new ManualClock({ wallMs: Date.now() });
  const { hub, identities } = await hubWith(t, 'gw-live', { scopeBroker: { url: mosquitto.url }, clock });
  const transport = createMqttTransport({ url: mosquitto.url, gatewayId: 'gw-live' });
  await transport.connect();
  t.teardown(() => transport.close());
  await identities(transport);
  await until('the retained scope to be applied', () => hub.status().identities.scopeVersion === 1);

  const child = await mqttChild(hub.status().ports.tcp!, 'child-a', sasPassword('child-a', key));
  t.teardown(() => child.endAsync(true));
  const closed = new Promise<void>((resolve) => child.once('close', () => resolve()));
  const at = Date.now();
  const revoked = scopeDocument('gw-live', 2, [{ deviceId: 'child-a', key, status: 'disabled' }]);
  await publishScope({ url: mosquitto.url }, 'gw-live', revoked);
  const late = new Promise((resolve) => setTimeout(resolve, REVOKE_WAIT_MS, 'still connected'));
  const outcome = await Promise.race([closed.then(() => 'dropped'), late]);
  t.equal(outcome, 'dropped', `the disabled child was dropped ${Date.now() - at} ms after the new scope was published`);
  t.equal(hub.status().identities.scopeVersion, 2, 'the new scope is in the cache');

  for (let i = 0; i < 3; i += 1) {
    clock.advance(60 * MINUTE_MS);
    await unknownConnect(t, hub.status().ports.tcp!, `stranger-${i}`);
  }
  t.equal(hub.status().identities.targetedReads, 0, 'the cache follows the broker live: unknown ids make no reads');
});

t.test('azure uplink: unknown ids make a scope read only while the cache is stale, backing off', async (t) => {
  const iothub = await IotHubEmulator.start();
  t.teardown(() => iothub.stop());
  iothub.patchDesired('gw-unk', { outpostScope: scopeDocument('gw-unk', 1, [{ deviceId: 'child-a', key: newKey() }]) });
  // Real wall time: the children's SAS tokens expire an hour from now, within the hub's token lifetime cap.
  const clock = new ManualClock({ wallMs: Date.now() });
  const { hub, identities } = await hubWith(t, 'gw-unk', { clock });
  const connectionString = iothub.addDevice('gw-unk');
  const transport = createTransport({ protocol: 'azure', connectionString, ca: iothub.ca.cert });
  await transport.connect();
  t.teardown(() => transport.close());
  await identities(transport);
  const port = hub.status().ports.tcp!;
  // A scope read is a twin GET. A read an unknown id set off has sent its GET before the hub's refusal
  // reached us (same process), so a GET of our own on the same connection, counted at the emulator after
  // it, is a barrier: scope reads = GETs - our own.
  const base = iothub.operations('gw-unk', 'twin-get');
  const syncsAtStart = hub.status().identities.syncs;
  let own = 0;
  const scopeReads = async () => {
    await transport.twin!.get();
    own += 1;
    return iothub.operations('gw-unk', 'twin-get') - base - own;
  };

  await unknownConnect(t, port, 'x-1');
  t.equal(await scopeReads(), 0, 'the scope was just read: an unknown id is unknown to the cloud too');
  clock.advance(5 * MINUTE_MS);
  await unknownConnect(t, port, 'x-2');
  t.equal(await scopeReads(), 1, 'stale after 5 minutes: one read');
  // Its document is applied (and the cache's age reset) before time moves on.
  await until('the read to be applied', () => hub.status().identities.syncs === syncsAtStart + 1);
  await unknownConnect(t, port, 'x-3');
  clock.advance(5 * MINUTE_MS);
  await unknownConnect(t, port, 'x-4');
  t.equal(await scopeReads(), 1, 'none within the doubled interval (10 minutes)');
  clock.advance(5 * MINUTE_MS);
  await unknownConnect(t, port, 'x-5');
  t.equal(await scopeReads(), 2, 'the next one after it');
  t.equal(hub.status().identities.targetedReads, 2, 'counted in status');
});
