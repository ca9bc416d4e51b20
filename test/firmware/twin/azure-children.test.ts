import t from 'tap';
import path from 'node:path';
import type { MqttClient } from 'mqtt';
import { startHub } from '../../../firmware/hub/index.js';
import { RingLog } from '../../../firmware/store/log.js';
import { createTransport } from '../../../firmware/uplink/transports.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { HookList, mqttChild, newKey, sasPassword, scopeDocument, until } from '../../support/hub-fixture.js';
import { tempDir } from '../../support/tmp.js';

/**
 * Children's twins ride in the gateway twin (`outpostChildren.<id>`), and IoT Hub refuses keys with '.'
 * or '$', both legal in device ids. One child's id or patch that IoT Hub refuses must not block the rest.
 */

const GATEWAY_ID = 'gw-tw';
const CHILDREN = ['child-a', 'child.b', 'child-c'];

/** A child on the hub that reports one patch and collects the desired patches it is sent. */
async function reportingChild(t: Parameters<typeof tempDir>[0], port: number, id: string, key: string, patch: object) {
  const child: MqttClient = await mqttChild(port, id, sasPassword(id, key));
  t.teardown(() => child.endAsync(true));
  const desired: Array<Record<string, unknown>> = [];
  let reported = false;
  child.on('message', (topic, payload) => {
    if (topic.startsWith('$iothub/twin/PATCH/properties/desired/')) desired.push(JSON.parse(payload.toString()));
    if (topic.startsWith('$iothub/twin/res/204/')) reported = true;
  });
  await child.subscribeAsync(['$iothub/twin/res/#', '$iothub/twin/PATCH/properties/desired/#'], { qos: 0 });
  child.publish('$iothub/twin/PATCH/properties/reported/?$rid=1', JSON.stringify(patch));
  await until(`${id}'s patch stored by the hub`, () => reported);
  return desired;
}

t.test("a child id with '.' and a child patch IoT Hub refuses do not block the other children's twins", async (t) => {
  const iothub = await IotHubEmulator.start();
  t.teardown(() => iothub.stop());
  const keys = new Map(CHILDREN.map((id) => [id, newKey()]));
  iothub.patchDesired(GATEWAY_ID, {
    outpostScope: scopeDocument(
      GATEWAY_ID,
      1,
      CHILDREN.map((deviceId) => ({ deviceId, key: keys.get(deviceId)! })),
    ),
    outpostChildren: { 'child-a': { mode: 'a' }, 'child%2Eb': { mode: 'b' } },
  });
  const dir = tempDir(t);
  const log = await RingLog.open({ dir: path.join(dir, 'log') });
  t.teardown(() => log.close());
  const hooks = new HookList();
  const errors: string[] = [];
  const hub = await startHub({
    config: { hub: { tcp: { port: 0 }, tls: false } },
    gatewayId: GATEWAY_ID,
    log,
    dataDir: path.join(dir, 'data'),
    uplink: hooks,
    onError: (err) => errors.push(err.message),
  });
  t.teardown(() => hub.stop());
  const connectionString = iothub.addDevice(GATEWAY_ID);
  const transport = createTransport({ protocol: 'azure', connectionString, ca: iothub.ca.cert });
  await transport.connect();
  t.teardown(() => transport.close());
  const hook = (name: string) => hooks.hooks.find((h) => h.name === name)!;
  await hook('identities').run(transport);

  const port = hub.status().ports.tcp!;
  await reportingChild(t, port, 'child-a', keys.get('child-a')!, { temp: 1 });
  const desiredB = await reportingChild(t, port, 'child.b', keys.get('child.b')!, { temp: 2 });
  await reportingChild(t, port, 'child-c', keys.get('child-c')!, { 'bad.key': 3 });

  await hook('twins').run(transport);
  const reported = iothub.twin(GATEWAY_ID).reported.outpostChildren as Record<string, unknown>;
  const want = { 'child-a': { temp: 1 }, 'child%2Eb': { temp: 2 } };
  t.same(reported, want, "both good children's patches reached IoT Hub, the '.' encoded");
  const refusal = /reported properties of "child-c" refused by IoT Hub: .*bad\.key/;
  t.match(errors.join('\n'), refusal, 'the refused child is named');
  await until('child.b to get its desired section', () => desiredB.length > 0);
  t.match(desiredB[0], { mode: 'b' }, 'the desired pull ran despite the refusal, child.b found under its encoded key');

  const patchesBefore = iothub.operations(GATEWAY_ID, 'twin-patch');
  await hook('twins').run(transport);
  const patchesAfter = iothub.operations(GATEWAY_ID, 'twin-patch');
  t.equal(patchesAfter, patchesBefore, 'the refused patch is not sent again on the next resync');
});
