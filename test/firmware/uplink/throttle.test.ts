import t, { type Test } from 'tap';
import { createRequire } from 'node:module';
import { sdkRefusal } from '../../../firmware/uplink/azure-refusal.js';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { THROTTLED_BACKOFF_MS_MIN, throttleReason } from '../../../firmware/uplink/throttle.js';
import { UplinkError } from '../../../firmware/uplink/types.js';
import { Mosquitto } from '../../support/brokers.js';
import { Subscriber } from '../../support/delivery.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';
import { until } from '../../support/until.js';

/**
 * Throttling answers: a CONNACK that says the server is busy, over its quota or its connection rate (or,
 * in MQTT 3.1.1, unavailable, as IoT Hub answers a throttled connect) puts the pump into a backoff of at
 * least THROTTLED_BACKOFF_MS_MIN, counted by reason in status, which a link-up wake does not cut short.
 * The answers come from the fault proxy's accept limit in front of a real mosquitto, in the client's own
 * protocol version; any other refusal keeps the ordinary (here: 20 ms) backoff.
 */

const ORDINARY_BACKOFF_MS_MAX = 20;

interface Case {
  protocolVersion: 4 | 5;
  code: number;
  reason: string | null;
}

const CASES: Case[] = [
  { protocolVersion: 5, code: 0x89, reason: 'connack-0x89-server-busy' },
  { protocolVersion: 5, code: 0x97, reason: 'connack-0x97-quota-exceeded' },
  { protocolVersion: 5, code: 0x9f, reason: 'connack-0x9f-connection-rate-exceeded' },
  { protocolVersion: 5, code: 0x88, reason: 'connack-0x88-server-unavailable' },
  { protocolVersion: 4, code: 3, reason: 'connack-3-server-unavailable' },
  { protocolVersion: 5, code: 0x87, reason: null },
  { protocolVersion: 4, code: 5, reason: null },
];

async function refusedOnce(t: Test, broker: Mosquitto, c: Case): Promise<void> {
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const answer = { connackV5: c.code, connackV4: c.code };
  proxy.limitAccepts({ acceptsPerSec: 0, burst: 0, answer });
  const gatewayId = `gw-throttle-${c.protocolVersion}-${c.code}`;
  const sub = await Subscriber.start(broker.url, `outpost/${gatewayId}/+/telemetry`);
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  for (let i = 1; i <= 20; i += 1) await lane.append({ body: Buffer.from(String(i)) });
  const url = `mqtt://127.0.0.1:${proxy.port}`;
  const transport = createMqttTransport({ url, gatewayId, protocolVersion: c.protocolVersion });
  // random 0: an ordinary delay is 0 ms, a throttled one exactly the floor.
  const backoff = { baseMs: ORDINARY_BACKOFF_MS_MAX, maxMs: ORDINARY_BACKOFF_MS_MAX, random: () => 0 };
  const pump = new Pump({ gatewayId, transport, lanes: [{ lane }], backoff });
  pump.start();
  t.teardown(() => pump.stop());
  await until('the first refusal', () => proxy.rateRefusedCount >= 1 && pump.status().lastError !== null);
  await until('the backoff after it', () => pump.status().link === 'backoff');
  const status = pump.status();
  const error = status.lastError?.message;
  t.match(error, /Connection refused/, `the CONNACK refusal is the error: ${error}`);
  if (c.reason === null) {
    t.equal(status.throttled.total, 0, 'not counted as throttling');
    t.ok(status.retryInMs! <= ORDINARY_BACKOFF_MS_MAX, `ordinary backoff (${status.retryInMs} ms)`);
    return;
  }
  t.same(status.throttled.byReason, { [c.reason]: 1 }, 'counted by reason in status');
  t.equal(status.throttled.last?.reason, c.reason);
  t.ok(status.retryInMs! > THROTTLED_BACKOFF_MS_MIN / 2, `a long backoff: ${status.retryInMs} ms`);
  pump.wake('link up');
  t.ok(pump.status().retryInMs! > THROTTLED_BACKOFF_MS_MIN / 2, 'a link-up wake does not cut it short');
  proxy.limitAccepts(null);
  t.ok(await sub.waitForDistinct(20, 15_000), 'once the server takes connections again, the backlog drains');
  t.equal(proxy.rateRefusedCount, 1, 'one refused connect during the floor, not one per ordinary backoff');
}

t.test('CONNACK throttling answers back off for at least the floor; other refusals do not', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  for (const c of CASES) {
    const what = `MQTT ${c.protocolVersion === 5 ? '5' : '3.1.1'} CONNACK 0x${c.code.toString(16)}`;
    await t.test(what, (t) => refusedOnce(t, broker, c));
  }
});

// The SDK's own copies, as the transport sees them (neither package is a dependency of outpost's own).
const sdkRequire = createRequire(import.meta.resolve('azure-iot-device-mqtt'));
type ErrorClass = new (message?: string) => Error;
const sdkErrors = (sdkRequire('azure-iot-common') as { errors: Record<string, ErrorClass> }).errors;
const { translateError } = sdkRequire('azure-iot-mqtt-base') as { translateError: (e: Error) => Error };

t.test("the Azure SDK's throttling errors, as the azure transport passes them on", async (t) => {
  const sdkThrottles = [
    ['ThrottlingError', 'azure-throttled'],
    ['IotHubQuotaExceededError', 'azure-quota-exceeded'],
  ];
  const connectFailed = (cause: Error) => new UplinkError('CONNECT', 'cannot connect', { cause });
  for (const [name, reason] of sdkThrottles) {
    const sdkError = new sdkErrors[name]!('slow down');
    const refusal = sdkRefusal(sdkError)!;
    const sendFailed = new UplinkError('REFUSED', `send failed: ${name}`, { cause: sdkError, refusal });
    t.equal(throttleReason(sendFailed), reason, `${name} on a send`);
    t.equal(throttleReason(connectFailed(sdkError)), reason, `${name} on a connect`);
  }
  // The SDK's mqtt.js 4 reports a refused CONNACK as an Error with the numeric code, which the SDK's
  // translateError wraps (keeping it as transportError); IoT Hub answers a throttled connect with 3.
  const connack = Object.assign(new Error('Connection refused: Server unavailable'), { code: 3 });
  const translated = translateError(connack);
  t.equal(throttleReason(connectFailed(translated)), 'connack-3-server-unavailable');
  const unauthorized = translateError(Object.assign(new Error('Connection refused: Not authorized'), { code: 5 }));
  t.equal(throttleReason(connectFailed(unauthorized)), null, 'not authorized is not');
  const http = Object.assign(new Error('Too Many Requests'), { response: { statusCode: 429 } });
  t.equal(throttleReason(http), 'http-429', 'HTTP 429 (IoT Hub and DPS over HTTPS)');
  const reset = Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
  t.equal(throttleReason(new UplinkError('CONNECT', 'reset', { cause: reset })), null, 'a network error is not');
});
