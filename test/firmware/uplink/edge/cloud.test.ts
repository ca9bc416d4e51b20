import t from 'tap';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import azureDevice from 'azure-iot-device';
import { edgeGateway, holdPubacks } from '../../../support/edge-gateway.js';
import { until } from '../../../support/hub-fixture.js';

/**
 * Cloud → child in edge mode (issue 18): real azure-iot-device children connect to the gateway's local hub;
 * the back end works with them through IoT Hub's service API (the emulator's) by their own device ids.
 */

type Message = InstanceType<typeof azureDevice.Message>;
const devicebound = (id: string) => `devices/${id}/messages/devicebound/#`;

t.test('a local child opens its upstream connection, no backlog needed; closed after it leaves + idle', async (t) => {
  const gw = await edgeGateway(t, ['child-1'], { cloudConnectionIdleSecs: 1 });
  const { cloud, runtime } = gw;
  const child = await gw.child('child-1');
  await child.open();
  await until("the child's own upstream connection", () => cloud.isConnected('child-1'));
  t.equal(cloud.telemetryOf('child-1').length, 0, "opened for the child's presence: it sent nothing");
  t.equal(runtime.status().uplink!.edge!.retained, 1, 'status: one connection kept for a local child');
  // Two idle periods and the housekeeping pass: a connection kept only by traffic would have closed by now.
  await sleep(2_500);
  t.ok(cloud.isConnected('child-1'), 'kept while the child stays connected locally');
  t.equal(cloud.operations('child-1', 'connect'), 1, 'one connect');
  await child.close();
  await until('closed after the child left and the idle time passed', () => !cloud.isConnected('child-1'), 10_000);
  t.equal(runtime.status().uplink!.edge!.retained, 0);
});

t.test("C2D from the service reaches the child with IoT Hub's properties, completed after its PUBACK", async (t) => {
  const gw = await edgeGateway(t, ['child-1']);
  const { cloud, runtime } = gw;
  const child = await gw.child('child-1');
  await child.open();
  const release = holdPubacks(child);
  const received: Message[] = [];
  child.on('message', (message: Message) => void received.push(message));
  await until('the child listens upstream too', () => cloud.isSubscribed('child-1', devicebound('child-1')));
  const id = cloud.sendC2d('child-1', 'open the valve', { color: 'red', 'two words': 'a&b=c' });
  await until('the child got it', () => received.length === 1);
  const [message] = received;
  t.equal(message!.data.toString(), 'open the valve');
  t.equal(message!.messageId, id, "IoT Hub's message id");
  t.equal(message!.to, '/devices/child-1/messages/devicebound');
  t.equal(message!.properties.getValue('color'), 'red');
  t.equal(message!.properties.getValue('two words'), 'a&b=c', 'properties decoded as IoT Hub encoded them');
  t.same(cloud.c2dCompleted('child-1'), [], 'not completed while the child holds its PUBACK');
  t.equal(cloud.c2dPending('child-1'), 1);
  t.equal(runtime.status().uplink!.edge!.cloud.c2dPending, 1, 'status: one held at the gateway');
  release();
  await until("completed at IoT Hub on the child's PUBACK", () => cloud.c2dCompleted('child-1').length === 1);
  t.same(cloud.c2dCompleted('child-1'), [id]);
  t.equal(cloud.c2dPending('child-1'), 0);
  t.match(runtime.status().uplink!.edge!.cloud, { c2dPending: 0, c2dDelivered: 1 });
});

t.test('a child that drops before its PUBACK gets the message again when it is back; completed then', async (t) => {
  const gw = await edgeGateway(t, ['child-1']);
  const { cloud } = gw;
  const first = await gw.child('child-1');
  await first.open();
  holdPubacks(first);
  const got: string[] = [];
  first.on('message', (message: Message) => void got.push(String(message.messageId)));
  await until('listening upstream', () => cloud.isSubscribed('child-1', devicebound('child-1')));
  const id = cloud.sendC2d('child-1', 'once');
  await until('the first connection got it', () => got.length === 1);
  const gone = once(first, 'disconnect').catch(() => {});
  await first.close();
  await Promise.race([gone, sleep(1_000)]);
  t.same(cloud.c2dCompleted('child-1'), [], 'not completed: the child never acknowledged it');
  t.equal(cloud.c2dPending('child-1'), 1, 'still queued at IoT Hub');
  const again = await gw.child('child-1');
  const second: Message[] = [];
  again.on('message', (message: Message) => void second.push(message));
  await again.open();
  await until("delivered again to the child's next connection", () => second.length === 1);
  t.equal(second[0]!.messageId, id, 'the same message');
  await until('completed on that PUBACK', () => cloud.c2dCompleted('child-1').length === 1);
  t.equal(cloud.c2dPending('child-1'), 0);
});

t.test('a direct method from the service reaches the child by name; its status and payload go back', async (t) => {
  const gw = await edgeGateway(t, ['child-1', 'child-2']);
  const { cloud, runtime } = gw;
  const child = await gw.child('child-1');
  await child.open();
  const calls: unknown[] = [];
  child.onDeviceMethod('setInterval', (request, response) => {
    calls.push(request.payload);
    void response.send(201, { interval: (request.payload as { secs: number }).secs, accepted: true });
  });
  child.onDeviceMethod('hang', () => {});
  await until('methods subscribed upstream', () => cloud.isSubscribed('child-1', '$iothub/methods/POST/#'));
  const result = await cloud.invokeDeviceMethod('child-1', undefined, {
    methodName: 'setInterval',
    payload: { secs: 15 },
    responseTimeoutInSeconds: 10,
  });
  t.same(result, { status: 201, payload: { interval: 15, accepted: true } }, "the child's own status and payload");
  t.same(calls, [{ secs: 15 }], "the service's payload reached the child");
  const relayed = await failure(
    cloud.invokeMethod(
      'gw',
      'outpost.invokeChild',
      { deviceId: 'child-1', methodName: 'setInterval', payload: { secs: 1 } },
      1_000,
    ),
  );
  t.ok(relayed !== null, 'no outpost.invokeChild on the gateway in edge mode (device mode only)');
  t.same(calls, [{ secs: 15 }]);

  const hang = await failure(
    cloud.invokeDeviceMethod('child-1', undefined, { methodName: 'hang', responseTimeoutInSeconds: 1 }),
  );
  t.match(hang, { errorCode: 504101, errorName: 'GatewayTimeout' }, "a child that does not answer: IoT Hub's timeout");
  const never = await failure(
    cloud.invokeDeviceMethod('child-2', undefined, { methodName: 'setInterval', payload: {} }),
  );
  t.match(never, { errorCode: 404103, errorName: 'DeviceNotOnline' }, 'a child that never connected');
  await child.close();
  await until('the gateway saw it leave', () => !runtime.status().hub!.connected.includes('child-1'));
  t.ok(cloud.isConnected('child-1'), 'its upstream connection is still up (idle time)');
  // The unsubscribe goes upstream just after the child left; until IoT Hub has it, the gateway answers 404.
  let left: unknown = null;
  for (let i = 0; i < 100 && left === null; i += 1) {
    left = await failure(cloud.invokeDeviceMethod('child-1', undefined, { methodName: 'setInterval', payload: {} }));
    if (left === null) await sleep(50);
  }
  t.match(
    left,
    { errorCode: 404103, errorName: 'DeviceNotOnline' },
    "a child that left, its connection still up: IoT Hub's own DeviceNotOnline",
  );
  t.match(runtime.status().uplink!.edge!.cloud, { methodsPending: 0, methodsTimedOut: 0 });
});

/** The error a call failed with, or null if it succeeded. */
function failure(call: Promise<unknown>): Promise<unknown> {
  return call.then(
    () => null,
    (err: unknown) => err,
  );
}

t.test('a module of the gateway (gw/analyzer) gets its direct methods the same way', async (t) => {
  const gw = await edgeGateway(t, [], {}, (cloud) => void cloud.createModule('gw', 'analyzer'));
  const { cloud } = gw;
  const module = await gw.module('gw', 'analyzer');
  await module.open();
  module.onMethod('recalibrate', (request, response) => void response!.send(200, { offset: request!.payload }));
  await until("the module's own upstream connection", () => cloud.isConnected('gw/analyzer'));
  await until('its methods subscribed upstream', () => cloud.isSubscribed('gw/analyzer', '$iothub/methods/POST/#'));
  const result = await cloud.invokeDeviceMethod('gw', 'analyzer', { methodName: 'recalibrate', payload: 0.5 });
  t.same(result, { status: 200, payload: { offset: 0.5 } });
  t.equal(cloud.telemetryOf('gw', 'analyzer').length, 0, 'opened for its presence alone');
});
