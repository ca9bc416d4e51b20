import t from 'tap';
import { resolveSysfsGpio } from '../../../drivers/gpio/sysfs.js';

const chip = (label: string, base: number, ngpio: number) => ({
  label: `${label}\n`,
  base: `${base}\n`,
  ngpio: `${ngpio}\n`,
});

t.test('BCM pins resolve from the labelled chip base (kernel 6.6+ numbering)', async (t) => {
  const pi4 = t.testdir({
    gpiochip512: chip('pinctrl-bcm2711', 512, 58),
    gpiochip570: chip('raspberrypi-exp-gpio', 570, 8),
    export: '',
    unexport: '',
  });
  t.equal(await resolveSysfsGpio(pi4, 'pinctrl-bcm2711', 17), 529, 'Pi 4: 512 + 17');
  const pi5 = t.testdir({
    gpiochip571: chip('pinctrl-rp1', 571, 54),
    gpiochip512: chip('gpio-brcmstb@107d508500', 512, 32),
  });
  t.equal(await resolveSysfsGpio(pi5, 'pinctrl-rp1', 17), 588, 'Pi 5: 571 + 17');
  const oldKernel = t.testdir({ gpiochip0: chip('pinctrl-bcm2835', 0, 54) });
  t.equal(await resolveSysfsGpio(oldKernel, 'pinctrl-bcm2835', 4), 4, 'pre-6.6 kernels numbered from 0');
});

t.test('a missing chip or pin names what was found', async (t) => {
  const root = t.testdir({ gpiochip512: chip('pinctrl-bcm2711', 512, 58) });
  await t.rejects(resolveSysfsGpio(root, 'pinctrl-rp1', 17), {
    code: 'NO_CHIP',
    message: `no gpiochip labelled "pinctrl-rp1" under ${root} (found "pinctrl-bcm2711")`,
  });
  await t.rejects(resolveSysfsGpio(root, 'pinctrl-bcm2711', 58), {
    code: 'NO_CHIP',
    message: 'pin 58 is outside gpiochip512 "pinctrl-bcm2711" (58 lines)',
  });
  await t.rejects(resolveSysfsGpio(`${root}/absent`, 'x', 1), { code: 'NO_CHIP', message: /^cannot list / });
});
