import mqtt from 'mqtt';
import t, { type Test } from 'tap';
import { createAzureTransport } from '../../../firmware/uplink/azure.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import type { UplinkMessage } from '../../../firmware/uplink/types.js';
import { D2C_MESSAGE_BYTES_MAX } from '../../../firmware/uplink/azure-refusal.js';
import { AedesBroker, Mosquitto } from '../../support/brokers.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { transportContract, type RigFactory } from '../../support/transport-contract.js';
import { uplinkMessage } from '../../support/uplink-message.js';

// The transport contract (test/support/transport-contract.ts) against each transport and broker pair that
// production uses: mqtt.js to mosquitto over MQTT 5 and 3.1.1, to aedes, and the Azure SDK to IoT Hub.

function messageFor(gatewayId: string) {
  return (seq: number, deviceId = 'good'): UplinkMessage =>
    uplinkMessage(gatewayId, seq, deviceId, Buffer.from(String(seq)));
}

async function proxyTo(t: Test, port: number): Promise<FaultProxy> {
  const proxy = await FaultProxy.start({ targetPort: port });
  t.teardown(() => proxy.close());
  return proxy;
}

/** Bodies per gateway id, as a subscriber on the broker sees them. */
async function mosquittoRigs(t: Test, protocolVersion: 4 | 5): Promise<RigFactory> {
  // The ACL refuses the device `bad`: mosquitto answers such a publish with PUBACK 0x87 over MQTT 5. With
  // brokers.ts's `max_queued_messages 0`, mosquitto 2.0.11 also closes the connection after every refusal
  // (README, "A message the cloud will not take"): a broker quirk, so the contract runs with a bounded queue.
  const broker = await Mosquitto.start({
    acl: ['topic write outpost/+/good/#', 'topic read outpost/#'],
    extraConfig: ['max_queued_messages 1000'],
  });
  t.teardown(() => broker.stop());
  const seen = new Map<string, string[]>();
  const subscriber = await mqtt.connectAsync(broker.url, { protocolVersion: 5, reconnectPeriod: 0 });
  t.teardown(() => subscriber.endAsync(true));
  subscriber.on('message', (topic, payload) => {
    const gatewayId = topic.split('/')[1]!;
    seen.set(gatewayId, [...(seen.get(gatewayId) ?? []), payload.toString()]);
  });
  await subscriber.subscribeAsync('outpost/+/good/telemetry', { qos: 1 });
  return async (t, id) => {
    const gatewayId = `mosquitto${protocolVersion}-${id}`;
    const proxy = await proxyTo(t, broker.port);
    const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${proxy.port}`, gatewayId, protocolVersion });
    const message = messageFor(gatewayId);
    const refused = { message: message(99, 'bad'), reason: 'mqtt5-0x87-not-authorized' };
    const refusable = protocolVersion === 5 ? refused : null;
    return { transport, proxy, message, refusable, received: () => seen.get(gatewayId) ?? [] };
  };
}

async function aedesRigs(t: Test): Promise<RigFactory> {
  const broker = await AedesBroker.start();
  t.teardown(() => broker.stop());
  const seen = new Map<string, string[]>();
  broker.broker.on('publish', (packet, client) => {
    if (client) seen.set(client.id, [...(seen.get(client.id) ?? []), packet.payload.toString()]);
  });
  return async (t, id) => {
    const gatewayId = `aedes-${id}`;
    const proxy = await proxyTo(t, broker.port);
    const transport = createMqttTransport({ url: `mqtt://127.0.0.1:${proxy.port}`, gatewayId, protocolVersion: 4 });
    return {
      transport,
      proxy,
      message: messageFor(gatewayId),
      refusable: null,
      received: () => seen.get(`outpost-${gatewayId}`) ?? [],
    };
  };
}

async function azureRigs(t: Test): Promise<RigFactory> {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  return async (t, id) => {
    const deviceId = `azure-${id}`;
    const proxy = await proxyTo(t, hub.port);
    const connectionString = hub.addDevice(deviceId, `localhost:${proxy.port}`);
    const transport = createAzureTransport({ connectionString, ca: hub.ca.cert });
    const message = messageFor(deviceId);
    // IoT Hub closes the connection on a message over its limit; the transport refuses it before sending.
    const tooLarge = { ...message(98), body: Buffer.alloc(D2C_MESSAGE_BYTES_MAX + 1, 0x31) };
    return {
      transport,
      proxy,
      message,
      refusable: { message: tooLarge, reason: 'too-large' },
      received: () => hub.telemetry.filter((r) => r.deviceId === deviceId).map((r) => r.body.toString()),
    };
  };
}

const MQTT311_NO_REFUSAL = 'MQTT 3.1.1 has no PUBACK reason: a broker acknowledges a message or closes the connection';

t.test('mqtt (MQTT 5) to mosquitto', async (t) => transportContract(t, 'mqtt5→mosquitto', await mosquittoRigs(t, 5)));
t.test('mqtt (MQTT 3.1.1) to mosquitto', async (t) =>
  transportContract(t, 'mqtt311→mosquitto', await mosquittoRigs(t, 4), MQTT311_NO_REFUSAL),
);
t.test('mqtt (MQTT 3.1.1) to aedes', async (t) =>
  transportContract(t, 'mqtt→aedes', await aedesRigs(t), `${MQTT311_NO_REFUSAL} (aedes 1.x speaks no MQTT 5)`),
);
t.test('azure to the IoT Hub emulator', async (t) => transportContract(t, 'azure→iothub', await azureRigs(t)));
