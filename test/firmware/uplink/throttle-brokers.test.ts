import t, { type Test } from 'tap';
import { setTimeout as sleep } from 'node:timers/promises';
import { createMqttTransport } from '../../../firmware/uplink/mqtt.js';
import { Pump } from '../../../firmware/uplink/pump.js';
import { THROTTLED_BACKOFF_MS_MIN } from '../../../firmware/uplink/throttle.js';
import { AedesBroker, Mosquitto } from '../../support/brokers.js';
import { Subscriber } from '../../support/delivery.js';
import { FaultProxy } from '../../support/fault-proxy.js';
import { MemoryLane } from '../../support/memory-lane.js';

/**
 * Throttling answers from the server's side of a live session and from a broker itself: an MQTT 5 DISCONNECT
 * 0x89 Server busy / 0x97 Quota exceeded / 0x9F Connection rate exceeded (sent to a session on a real
 * mosquitto by the fault proxy, as a broker shedding load does) puts the pump into the long backoff, counted
 * by reason; 0x8B Server shutting down does not. And aedes itself refusing a CONNECT with 3.1.1's CONNACK 3
 * Server unavailable (its authenticate hook's returnCode) is throttling too.
 */

/** The ordinary backoff here: a throttled sleep is at least THROTTLED_BACKOFF_MS_MIN, two orders more. */
const ORDINARY_BACKOFF_MS_MAX = 20;

async function until(what: string, check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

function pumpOn(url: string, gatewayId: string, protocolVersion: 4 | 5, lane: MemoryLane): Pump {
  const transport = createMqttTransport({ url, gatewayId, protocolVersion });
  // random 0: an ordinary delay is 0 ms, a throttled one exactly the floor.
  const backoff = { baseMs: ORDINARY_BACKOFF_MS_MAX, maxMs: ORDINARY_BACKOFF_MS_MAX, random: () => 0 };
  return new Pump({ gatewayId, transport, lanes: [{ lane }], backoff });
}

const DISCONNECTS: Array<{ code: number; reason: string | null }> = [
  { code: 0x89, reason: 'disconnect-0x89-server-busy' },
  { code: 0x97, reason: 'disconnect-0x97-quota-exceeded' },
  { code: 0x9f, reason: 'disconnect-0x9f-connection-rate-exceeded' },
  { code: 0x8b, reason: null },
];

async function disconnectedOnce(t: Test, broker: Mosquitto, code: number, reason: string | null): Promise<void> {
  const proxy = await FaultProxy.start({ targetPort: broker.port });
  t.teardown(() => proxy.close());
  const gatewayId = `gw-disconnect-${code}`;
  const sub = await Subscriber.start(broker.url, `outpost/${gatewayId}/+/telemetry`);
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  await lane.append({ body: Buffer.from('1') });
  const pump = pumpOn(`mqtt://127.0.0.1:${proxy.port}`, gatewayId, 5, lane);
  pump.start();
  t.teardown(() => pump.stop());
  t.ok(await sub.waitForDistinct(1, 15_000), 'connected and drained');
  proxy.disconnect(code);
  await until('the loss', () => pump.status().link === 'backoff' || proxy.acceptedCount > 1);
  const status = pump.status();
  t.match(status.lastError?.message, new RegExp(`DISCONNECT 0x${code.toString(16)}`), 'the DISCONNECT is the error');
  if (reason === null) {
    t.equal(status.throttled.total, 0, 'not counted as throttling');
    await until('reconnected', () => proxy.acceptedCount === 2);
    return;
  }
  t.same(status.throttled.byReason, { [reason]: 1 }, 'counted by reason in status');
  t.ok(status.retryInMs! > THROTTLED_BACKOFF_MS_MIN / 2, `a long backoff: ${status.retryInMs} ms`);
  pump.wake('link up');
  t.ok(pump.status().retryInMs! > THROTTLED_BACKOFF_MS_MIN / 2, 'a link-up wake does not cut it short');
  await lane.append({ body: Buffer.from('2') });
  t.ok(await sub.waitForDistinct(2, 15_000), 'after the backoff the gateway comes back and drains');
  t.equal(proxy.acceptedCount, 2, 'one reconnect, after the long backoff');
}

t.test('MQTT 5 DISCONNECT for load backs off for at least the floor; a shutdown does not', async (t) => {
  const broker = await Mosquitto.start();
  t.teardown(() => broker.stop());
  for (const { code, reason } of DISCONNECTS) {
    await t.test(`DISCONNECT 0x${code.toString(16)}`, (t) => disconnectedOnce(t, broker, code, reason));
  }
});

t.test('aedes refusing a CONNECT with CONNACK 3 Server unavailable is throttling', async (t) => {
  let refusing = true;
  const broker = await AedesBroker.start({
    authenticate: (client, _username, _password, done) => {
      // The test's own subscriber is let in.
      if (!refusing || client.id !== 'outpost-gw-aedes-busy') return done(null, true);
      // aedes sends the CONNACK return code of the error it is given (MQTT 3.1.1, 3.2.2.3).
      done(Object.assign(new Error('server unavailable'), { returnCode: 3 }), false);
    },
  });
  t.teardown(() => broker.stop());
  const sub = await Subscriber.start(`mqtt://127.0.0.1:${broker.port}`, 'outpost/gw-aedes-busy/+/telemetry');
  t.teardown(() => sub.close());
  const lane = new MemoryLane('upstream');
  await lane.append({ body: Buffer.from('1') });
  const pump = pumpOn(broker.url, 'gw-aedes-busy', 4, lane);
  pump.start();
  t.teardown(() => pump.stop());
  await until('the refusal and the backoff after it', () => pump.status().link === 'backoff');
  const status = pump.status();
  const error = status.lastError?.message;
  t.match(error, /Connection refused/, `the CONNACK refusal is the error: ${error}`);
  t.same(status.throttled.byReason, { 'connack-3-server-unavailable': 1 }, 'counted by reason');
  t.ok(status.retryInMs! > THROTTLED_BACKOFF_MS_MIN / 2, `a long backoff: ${status.retryInMs} ms`);
  refusing = false;
  t.ok(await sub.waitForDistinct(1, 15_000), 'once aedes takes connections, the backlog drains');
  t.equal(pump.status().throttled.total, 1, 'one refusal during the floor, not one per ordinary backoff');
});
