import t, { type Test } from 'tap';
import { ManualClock } from '../../support/manual-clock.js';
import type { DeviceConfig, GpioBusConfig } from '../../../firmware/config/types.js';
import type { BusProvider } from '../../../drivers/buses.js';
import { FakeGpioController } from '../../../drivers/gpio/fake.js';
import { startDevices, type DeviceManager } from '../../../drivers/index.js';
import { DEVICE_SINK_INFLIGHT_MAX } from '../../../drivers/runner.js';
import { ManualTimers } from '../../support/manual-timers.js';
import { boardWith, recordingSink } from '../../fixtures/boards.js';

const GPIO_BUS: GpioBusConfig = {
  id: 'gpio',
  kind: 'gpio',
  provider: 'sim',
  chipLabel: 'fake',
  sysfsRoot: '/nowhere',
  simInputs: {},
};

async function start(t: Test, devices: Partial<DeviceConfig>[]) {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const gpio = new FakeGpioController();
  const buses: BusProvider = {
    gpio: async () => gpio,
    i2c: async () => {
      throw new Error('no i2c');
    },
    serial: () => {
      throw new Error('no serial');
    },
    close: () => gpio.close(),
  };
  const sink = recordingSink();
  const manager: DeviceManager = await startDevices(
    boardWith(
      [GPIO_BUS],
      devices.map((d) => ({ bus: 'gpio', ...d })),
    ),
    sink.sink,
    { buses, clock, timers },
  );
  t.teardown(() => manager.close());
  const reported: [string, Record<string, unknown>][] = [];
  manager.onReported((id, patch) => reported.push([id, patch]));
  await timers.advance(0);
  return { clock, timers, gpio, sink, manager, reported };
}

t.test('door contact: debounced edges, one reading per settled change', async (t) => {
  const door = {
    id: 'door',
    compatible: 'outpost,gpio-input',
    settings: { pin: 17, debounceMs: 50, activeLow: true, activeName: 'closed', inactiveName: 'open' },
  };
  const { gpio, timers, sink } = await start(t, [door]);
  t.same(
    sink.readings(),
    [{ active: true, state: 'closed', level: 0, changes: 0 }],
    'the state at start is reported (line low = contact closed, active-low)',
  );
  // A reed switch bouncing: five edges within 12 ms, settling high (door opened).
  for (const level of [1, 0, 1, 0, 1] as const) {
    gpio.drive(17, level);
    await timers.advance(3);
  }
  await timers.advance(30);
  t.equal(sink.messages.length, 1, 'nothing while the line is still bouncing');
  await timers.advance(30);
  t.same(sink.readings().at(-1), { active: false, state: 'open', level: 1, changes: 1 }, 'one reading once it settled');
  // A glitch shorter than the debounce window that returns to the same level is not a change.
  gpio.drive(17, 0);
  await timers.advance(10);
  gpio.drive(17, 1);
  await timers.advance(200);
  t.equal(sink.messages.length, 2, 'a glitch is not reported');
  t.match(sink.messages[0]!.properties, { sensor: 'gpio-input', compatible: 'outpost,gpio-input' });
});

t.test('pulse counter: pulses, total and rate per poll, scaled to the meter unit', async (t) => {
  const meter = {
    id: 'meter',
    compatible: 'outpost,gpio-pulse-counter',
    pollIntervalMs: 10_000,
    settings: { pin: 27, edge: 'rising', debounceMs: 5, unitsPerPulse: 0.5, unitName: 'waterL' },
  };
  const { gpio, timers, sink } = await start(t, [meter]);
  t.same(
    sink.readings(),
    [{ pulses: 0, pulsesTotal: 0, pulsesPerSec: 0, waterL: 0, waterLPerSec: 0 }],
    'first sample at start',
  );
  for (let i = 0; i < 20; i++) {
    gpio.drive(27, 1);
    gpio.drive(27, 0);
    await timers.advance(100);
  }
  // Contact bounce: a second rising edge 1 ms after the first is inside the 5 ms lockout.
  gpio.drive(27, 1);
  gpio.drive(27, 0);
  await timers.advance(1);
  gpio.drive(27, 1);
  gpio.drive(27, 0);
  await timers.advance(10_000 - 2001);
  t.same(sink.readings().at(-1), { pulses: 21, pulsesTotal: 21, pulsesPerSec: 2.1, waterL: 10.5, waterLPerSec: 1.05 });
  await timers.advance(10_000);
  t.same(
    sink.readings().at(-1),
    { pulses: 0, pulsesTotal: 21, pulsesPerSec: 0, waterL: 10.5, waterLPerSec: 0 },
    'no pulses, zero rate',
  );
});

t.test('relay: switched by direct method, mirrored in reported properties', async (t) => {
  const relay = {
    id: 'relay1',
    compatible: 'outpost,gpio-relay',
    settings: { pin: 22, activeLow: true, initialOn: false },
  };
  const { gpio, manager, reported } = await start(t, [relay]);
  t.equal(gpio.pin(22).current, 1, 'active-low relay starts off: line high');
  t.same(reported, [['relay1', { on: false }]], 'initial state reported');
  t.same(await manager.invokeMethod('relay1', 'switch', { on: true }), { status: 200, payload: { on: true } });
  t.equal(gpio.pin(22).current, 0, 'on drives the line low');
  t.same(reported.at(-1), ['relay1', { on: true }]);
  t.same(await manager.invokeMethod('relay1', 'toggle', null), { status: 200, payload: { on: false } });
  t.same(await manager.invokeMethod('relay1', 'get', null), { status: 200, payload: { on: false } });
  t.same(gpio.pin(22).writes, [0, 1]);
  t.same(await manager.invokeMethod('relay1', 'switch', { on: 'yes' }), {
    status: 400,
    payload: { error: 'payload must be {"on": true} or {"on": false}' },
  });
  t.equal((await manager.invokeMethod('relay1', 'explode', {})).status, 404);
  t.equal((await manager.invokeMethod('nobody', 'switch', { on: true })).status, 404);
  t.equal(reported.length, 3, 'a method that changes nothing reports nothing');
});

t.test('status LED: offline, online and backlog patterns', async (t) => {
  const led = { id: 'status-led', compatible: 'outpost,status-led', settings: { pin: 23, activeLow: false } };
  const { gpio, timers, manager, reported } = await start(t, [led]);
  const pin = gpio.pin(23);
  t.same(reported.at(-1), ['status-led', { ledPattern: 'offline' }]);
  const before = pin.writes.length;
  await timers.advance(4000);
  t.same(pin.writes.slice(before), [0, 1, 0, 1], 'offline: a short flash every two seconds');
  manager.setLinkState({ online: true, backlogRecords: 120 });
  t.same(reported.at(-1), ['status-led', { ledPattern: 'backlog' }]);
  const blinkStart = pin.writes.length;
  await timers.advance(1000);
  t.ok(pin.writes.length - blinkStart >= 4, 'backlog: fast blinking');
  manager.setLinkState({ online: true, backlogRecords: 0 });
  await timers.advance(5000);
  t.equal(pin.current, 1, 'online: steady on');
  const steady = pin.writes.length;
  await timers.advance(5000);
  t.equal(pin.writes.length, steady, 'steady means no more writes');
});

t.test('a pin that cannot be opened faults the device and is retried with backoff', async (t) => {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const gpio = new FakeGpioController();
  gpio.failOpen = true;
  const buses: BusProvider = {
    gpio: async () => gpio,
    i2c: async () => {
      throw new Error();
    },
    serial: () => {
      throw new Error();
    },
    close: async () => {},
  };
  const sink = recordingSink();
  const manager = await startDevices(
    boardWith(
      [GPIO_BUS],
      [
        {
          id: 'door',
          compatible: 'outpost,gpio-input',
          bus: 'gpio',
          settings: { pin: 17, debounceMs: 0, activeLow: false, activeName: 'a', inactiveName: 'i' },
        },
      ],
    ),
    sink.sink,
    { buses, clock, timers },
  );
  t.teardown(() => manager.close());
  await timers.advance(0);
  t.match(manager.status()[0], {
    state: 'faulted',
    lastError: 'cannot export BCM 17 (injected)',
    counters: { busErrors: 1 },
  });
  await timers.advance(1000 + 2000 + 4000);
  t.equal(manager.status()[0]!.counters.busErrors, 4, 'retries after 1 s, 2 s and 4 s');
  gpio.failOpen = false;
  await timers.advance(8000);
  t.equal(manager.status()[0]!.state, 'ok', 'recovers by itself');
  t.equal(sink.messages.length, 1, 'and reports the input state');
});

t.test('an event storm against a stalled sink is bounded: excess readings are dropped and counted', async (t) => {
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const gpio = new FakeGpioController();
  const buses: BusProvider = {
    gpio: async () => gpio,
    i2c: async () => {
      throw new Error();
    },
    serial: () => {
      throw new Error();
    },
    close: async () => {},
  };
  let pending = 0;
  const stalledSink = () => {
    pending++;
    return new Promise<void>(() => {});
  };
  const door = {
    id: 'door',
    compatible: 'outpost,gpio-input',
    bus: 'gpio',
    settings: { pin: 17, debounceMs: 0, activeLow: false, activeName: 'a', inactiveName: 'i' },
  };
  const manager = await startDevices(boardWith([GPIO_BUS], [door]), stalledSink, { buses, clock, timers });
  t.teardown(() => manager.close());
  await timers.advance(1);
  for (let i = 0; i < 40; i++) {
    gpio.drive(17, i % 2 === 0 ? 1 : 0);
    await timers.advance(1);
  }
  t.equal(pending, DEVICE_SINK_INFLIGHT_MAX, 'never more than the in-flight limit handed to the sink');
  t.match(manager.status()[0], {
    state: 'ok',
    counters: { readings: DEVICE_SINK_INFLIGHT_MAX, dropped: 41 - DEVICE_SINK_INFLIGHT_MAX },
  });
});
