import t, { type Test } from 'tap';
import { ManualClock } from '../support/manual-clock.js';
import type { I2cBusConfig } from '../../firmware/config/types.js';
import type { BusProvider } from '../../drivers/buses.js';
import { DEVICE_RETRY_BACKOFF_MS_MAX } from '../../drivers/runner.js';
import { FakeBme280 } from '../../drivers/i2c/fake-bme280.js';
import { FakeI2cBus } from '../../drivers/i2c/fake-bus.js';
import { FakeSht3x } from '../../drivers/i2c/fake-sht3x.js';
import { startDevices } from '../../drivers/index.js';
import { ManualTimers } from '../support/manual-timers.js';
import { boardWith, recordingSink } from '../fixtures/boards.js';

const I2C_BUS: I2cBusConfig = { id: 'i2c-1', kind: 'i2c', provider: 'i2c-dev', device: '/dev/i2c-1' };

async function setup(t: Test) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const bus = new FakeI2cBus();
  const buses: BusProvider = {
    gpio: async () => {
      throw new Error();
    },
    i2c: async () => bus,
    serial: () => {
      throw new Error();
    },
    close: () => bus.close(),
  };
  const sink = recordingSink();
  const board = boardWith(
    [I2C_BUS],
    [
      { id: 'env', compatible: 'bosch,bme280', pollIntervalMs: 10_000, settings: { address: 0x76, oversampling: 1 } },
      {
        id: 'climate',
        compatible: 'sensirion,sht3x',
        pollIntervalMs: 10_000,
        settings: { address: 0x44, repeatability: 'high' },
      },
      {
        id: 'spare',
        compatible: 'sensirion,sht3x',
        status: 'disabled',
        settings: { address: 0x45, repeatability: 'high' },
      },
    ],
  );
  const manager = await startDevices(board, sink.sink, { buses, clock, timers });
  t.teardown(() => manager.close());
  const reported: [string, Record<string, unknown>][] = [];
  manager.onReported((id, patch) => reported.push([id, patch]));
  return { clock, timers, bus, sink, manager, reported };
}

t.test('an absent device is faulted, retried with capped backoff, and recovers when plugged in', async (t) => {
  const { timers, bus, sink, manager, reported } = await setup(t);
  bus.attach(0x44, new FakeSht3x());
  await timers.advance(100);
  t.match(manager.status(), [
    {
      id: 'env',
      state: 'faulted',
      lastError: 'no device acknowledged at 0x76',
      counters: { busErrors: 1, readings: 0 },
    },
    { id: 'climate', state: 'ok', counters: { readings: 1 } },
    { id: 'spare', state: 'disabled' },
  ]);
  t.same(reported, [['env', { state: 'faulted', fault: 'no device acknowledged at 0x76' }]], 'fault reported once');
  await timers.advance(10 * 60_000);
  const attempts = manager.status()[0]!.counters.busErrors;
  // 1+2+4+8+16 s, then every 30 s: about 24 attempts in ten minutes, not 600.
  t.ok(attempts > 15 && attempts < 30, `backoff capped at ${DEVICE_RETRY_BACKOFF_MS_MAX} ms (${attempts} attempts)`);
  t.equal(reported.length, 1, 'repeated failures do not repeat the report');
  bus.attach(0x76, new FakeBme280());
  await timers.advance(DEVICE_RETRY_BACKOFF_MS_MAX + 100);
  t.equal(manager.status()[0]!.state, 'ok');
  t.ok(manager.status()[0]!.counters.readings >= 1, 'readings flow again');
  t.same(reported.at(-1), ['env', { state: 'ok', fault: null }]);
  t.match(sink.readings().at(-1), { temperatureC: 25.08 });
});

t.test('a bus error mid-run faults the device; it recovers after the first retry', async (t) => {
  const { timers, bus, manager, sink } = await setup(t);
  bus.attach(0x76, new FakeBme280());
  bus.attach(0x44, new FakeSht3x());
  await timers.advance(100);
  t.equal(manager.status()[0]!.state, 'ok');
  bus.failNext(0x76, 1);
  await timers.advance(10_000);
  t.match(manager.status()[0], { state: 'faulted', lastError: 'i2c transfer to 0x76 failed (injected)' });
  await timers.advance(1000 + 100);
  t.match(
    manager.status()[0],
    { state: 'ok', lastError: 'i2c transfer to 0x76 failed (injected)' },
    'last error is kept for the operator',
  );
  t.equal(sink.messages.filter((m) => m.deviceId === 'env').length, 2);
  t.match(manager.status()[0]!.lastReading, { values: { temperatureC: 25.08 } });
});

t.test('readings the sink rejects are counted as dropped, and the device keeps running', async (t) => {
  const { timers, bus, manager, sink } = await setup(t);
  bus.attach(0x76, new FakeBme280());
  bus.attach(0x44, new FakeSht3x());
  sink.reject = true;
  // Samples at about 0, 10, 20 and 30 s (each 10 s after the previous one finished).
  await timers.advance(35_000);
  t.match(manager.status()[1], { state: 'ok', counters: { readings: 4, dropped: 4 } });
  sink.reject = false;
  await timers.advance(10_000);
  t.equal(sink.messages.length, 2, 'accepted again once the sink is');
});

t.test('methods on a faulted device answer 503', async (t) => {
  const { timers, manager } = await setup(t);
  await timers.advance(100);
  t.same(await manager.invokeMethod('env', 'anything', {}), {
    status: 503,
    payload: { error: 'device "env" is faulted: no device acknowledged at 0x76' },
  });
});
