import t from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pump } from '../../../firmware/uplink/pump.js';
import { THROTTLED_BACKOFF_MS_MIN } from '../../../firmware/uplink/throttle.js';
import { createTransport } from '../../../firmware/uplink/transports.js';
import { IotHubEmulator } from '../../support/iothub-emulator.js';
import { MemoryLane } from '../../support/memory-lane.js';

/**
 * IoT Hub's connect throttle, through the real azure-iot-device SDK: the emulator refuses CONNECTs over its
 * connection rate with CONNACK 3 Server unavailable, as IoT Hub does, which the SDK reports as its
 * ServiceUnavailableError (the code itself lost on the way); the pump counts it as throttling and
 * waits at least THROTTLED_BACKOFF_MS_MIN (one refused connect in that time, not one per ordinary backoff),
 * then connects once the hub takes connections and its backlog arrives.
 */

const ORDINARY_BACKOFF_MS_MAX = 20;

async function until(what: string, check: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

t.test("IoT Hub's connect throttle (CONNACK 3) puts the azure uplink into the long backoff", async (t) => {
  const hub = await IotHubEmulator.start();
  t.teardown(() => hub.stop());
  const connectionString = hub.addDevice('gw-throttled');
  hub.setConnectThrottle(0);
  const transport = createTransport({ protocol: 'azure', connectionString, ca: hub.ca.cert });
  const lane = new MemoryLane('upstream');
  for (let i = 1; i <= 5; i += 1) await lane.append({ body: Buffer.from(String(i)) });
  const backoff = { baseMs: ORDINARY_BACKOFF_MS_MAX, maxMs: ORDINARY_BACKOFF_MS_MAX, random: () => 0 };
  const pump = new Pump({ gatewayId: 'gw-throttled', transport, lanes: [{ lane }], backoff });
  pump.start();
  t.teardown(() => pump.stop());
  await until('the refusal', () => pump.status().throttled.total > 0);
  const status = pump.status();
  const why = status.lastError?.message;
  t.same(status.throttled.byReason, { 'azure-service-unavailable': 1 }, `counted by the SDK's reason: ${why}`);
  t.equal(status.link, 'backoff');
  t.ok(status.retryInMs! > THROTTLED_BACKOFF_MS_MIN / 2, `a long backoff: ${status.retryInMs} ms`);
  hub.setConnectThrottle(100);
  await until('the backlog at the hub', () => hub.telemetryOf('gw-throttled').length >= 5);
  t.equal(hub.operations('gw-throttled', 'throttled'), 1, 'one refused connect during the floor');
  t.equal(pump.status().throttled.total, 1);
});
