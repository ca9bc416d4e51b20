import t from 'tap';
import { SCOPE_SCHEMA } from '../../../../firmware/auth/identity.js';
import { SCOPE_TWIN_PROPERTY } from '../../../../firmware/auth/scope-sync.js';
import type { Runtime } from '../../../../firmware/runtime.js';
import { dpsEdgeWorld, GATEWAY_ID, openChild, type DpsEdgeWorld } from '../../../support/dps-edge-gateway.js';
import { until } from '../../../support/dps-fixture.js';
import { newSymmetricKey, type IotHubEmulator } from '../../../support/iothub-emulator.js';

/**
 * The local hub takes a child's SAS token when it names the IoT Hub the gateway uses (the audience of a
 * child's standard connection string). A provisioned gateway learns that hub only from DPS: at its first
 * boot there is none yet, and a re-provisioning changes it. Device mode, whose scope document (the gateway
 * twin's outpostScope) names no hub, so the assigned hub is the only audience the children's tokens can name.
 * Before the fix the hub read the hosts once at start: a first boot refused every child ('audience'), and
 * after a re-provisioning the children of the new hub.
 */

async function childOfGateway(w: DpsEdgeWorld, runtime: Runtime, hub: IotHubEmulator, id: string, host: string) {
  const key = newSymmetricKey();
  hub.createDevice(id, { primaryKey: key, secondaryKey: key });
  const devices = [{ deviceId: id, status: 'enabled', version: 1, auth: { type: 'sas', primaryKey: key } }];
  const scope = { schema: SCOPE_SCHEMA, gatewayId: GATEWAY_ID, version: Date.now(), devices };
  hub.patchDesired(GATEWAY_ID, { [SCOPE_TWIN_PROPERTY]: scope });
  const child = await w.child(runtime, hub, id, host);
  await openChild(runtime, child);
  await child.close();
}

t.test('children naming the assigned hub are taken at first boot and after a re-provisioning', async (t) => {
  const w = await dpsEdgeWorld(t, 'device');
  const runtime = await w.boot();
  await until('provisioned and up', () => runtime.status().link === 'up', 60_000);
  await childOfGateway(w, runtime, w.hubA, 'c1', w.hostA);
  t.pass('a child naming hub A was taken at the first boot');
  w.dps.reassign(GATEWAY_ID, w.hostB);
  await until('on hub B', () => runtime.status().uplink?.provisioning?.assignedHub === w.hostB, 60_000);
  await until('up on hub B', () => runtime.status().link === 'up', 60_000);
  await childOfGateway(w, runtime, w.hubB, 'c2', w.hostB);
  t.pass('a child naming hub B was taken after the re-provisioning');
});
