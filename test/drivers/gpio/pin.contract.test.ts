import t from 'tap';
import { FakeGpioController } from '../../../drivers/gpio/fake.js';
import { openSysfsGpio } from '../../../drivers/gpio/onoff.js';
import type { GpioController, PinLevel } from '../../../drivers/gpio-pin.js';

/**
 * The DigitalPin contract (drivers/gpio/pin.ts), on two pins wired together: `outPin` drives `inPin`
 * (`loop` tells a fake controller to copy the level, as the wire does).
 */
function contract(
  name: string,
  open: () => Promise<{ gpio: GpioController; outPin: number; inPin: number; loop(level: PinLevel): void }>,
): void {
  t.test(`DigitalPin contract: ${name}`, async (t) => {
    const { gpio, outPin, inPin, loop } = await open();
    t.teardown(() => gpio.close());
    const output = await gpio.open(outPin, { direction: 'out', initial: 0 });
    const input = await gpio.open(inPin, { direction: 'in', edge: 'both' });
    await t.rejects(gpio.open(outPin, { direction: 'in' }), { code: 'BUSY' }, 'a pin opens once');
    const edges: PinLevel[] = [];
    const unwatch = input.watch((level) => edges.push(level));
    t.equal(await output.read(), 0, 'an output reads back its initial level');
    for (const level of [1, 0, 1] as PinLevel[]) {
      await output.write(level);
      loop(level);
      t.equal(await input.read(), level, `input follows output to ${level}`);
    }
    for (let waitMs = 0; edges.length < 3 && waitMs < 2000; waitMs += 10) await new Promise((r) => setTimeout(r, 10));
    t.same(edges, [1, 0, 1], 'each transition is one edge, in order');
    unwatch();
    await t.rejects(input.write(1), { code: 'DIRECTION' }, 'inputs cannot be written');
    await output.close();
    await output.close();
    await t.rejects(output.read(), { code: 'CLOSED' });
    await t.resolves(gpio.open(outPin, { direction: 'out' }), 'a closed pin can be opened again');
  });
}

contract('FakeGpioController', async () => {
  const gpio = new FakeGpioController();
  return { gpio, outPin: 5, inPin: 6, loop: (level) => gpio.drive(6, level) };
});

// Real hardware: OUTPOST_TEST_GPIO=<chip label>:<out BCM>:<in BCM>, with a wire between the two pins,
// e.g. OUTPOST_TEST_GPIO=pinctrl-bcm2711:20:21.
const real = process.env['OUTPOST_TEST_GPIO'];
if (real) {
  const [chipLabel, outPin, inPin] = real.split(':');
  contract(`sysfs via onoff (${real})`, async () => ({
    gpio: await openSysfsGpio({
      id: 'gpio',
      kind: 'gpio',
      provider: 'sysfs',
      chipLabel: chipLabel!,
      sysfsRoot: '/sys/class/gpio',
      simInputs: {},
    }),
    outPin: Number(outPin),
    inPin: Number(inPin),
    loop: () => {},
  }));
} else {
  t.test(
    'DigitalPin contract: real sysfs GPIO',
    { skip: 'set OUTPOST_TEST_GPIO=<chip label>:<out BCM>:<in BCM> with the two pins wired together' },
    () => {},
  );
}
