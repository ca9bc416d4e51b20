import { join } from 'node:path';
import t from 'tap';
import { ManualClock } from '../support/manual-clock.js';
import { loadBoard } from '../../firmware/board/board.js';
import { createBusProvider, startDevices } from '../../drivers/index.js';
import { ManualTimers } from '../support/manual-timers.js';
import { recordingSink } from '../fixtures/boards.js';

const ROOT = new URL('../../', import.meta.url).pathname;

t.test('the sim board runs every device with no hardware', async (t) => {
  const board = await loadBoard(join(ROOT, 'board.json'));
  const clock = new ManualClock();
  const timers = new ManualTimers(clock);
  const sink = recordingSink();
  const manager = await startDevices(board, sink.sink, {
    buses: createBusProvider(board, { clock, timers }),
    clock,
    timers,
  });
  t.teardown(() => manager.close());
  // The GPS replay file is read from disk in real time; everything else moves on the manual clock.
  const STARTUP_STEPS_MAX = 250;
  for (let step = 0; step < STARTUP_STEPS_MAX && !manager.status().every((device) => device.state === 'ok'); step++) {
    await timers.advance(20);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  t.same(
    manager
      .status()
      .filter((device) => device.state !== 'ok')
      .map((device) => `${device.id}: ${device.state} ${device.lastError}`),
    [],
    'every device started',
  );
  await timers.advance(60_000);
  const byDevice = new Map<string, Record<string, unknown>[]>();
  for (const message of sink.messages) {
    byDevice.set(message.deviceId, [...(byDevice.get(message.deviceId) ?? []), JSON.parse(message.body.toString())]);
  }
  t.same(
    [...byDevice.keys()].sort(),
    ['adc', 'climate', 'door', 'env', 'gps', 'meter'],
    'every sensor produced readings',
  );
  t.match(byDevice.get('env')!.at(-1), { temperatureC: Number, pressurePa: Number, humidityPercent: Number });
  const temperatures = byDevice.get('env')!.map((reading) => reading['temperatureC'] as number);
  t.ok(
    temperatures.every((c) => c > 20 && c < 30),
    'BME280 values near the datasheet example',
  );
  t.ok(new Set(temperatures).size > 1, 'and drifting');
  t.match(byDevice.get('climate')!.at(-1), { temperatureC: Number, humidityPercent: Number });
  t.match(byDevice.get('adc')!.at(-1), { supplyV: Number, lightV: Number });
  t.ok(byDevice.get('door')!.length >= 2, 'the door toggled');
  t.ok((byDevice.get('meter')!.at(-1)!['pulsesPerSec'] as number) > 4, 'the meter counts simulated pulses');
  t.match(byDevice.get('gps')!.at(-1), { fix: true, latitudeDeg: 44.0582 });
  t.same(
    manager
      .status()
      .filter((device) => device.counters.malformed > 0)
      .map((device) => device.id),
    [],
    'the replay is clean',
  );
  t.same(await manager.invokeMethod('relay1', 'switch', { on: true }), { status: 200, payload: { on: true } });
});
