import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { GpioError } from '../gpio-pin.js';

export interface GpioChipInfo {
  name: string;
  label: string;
  base: number;
  ngpio: number;
}

/** Every gpiochipN directory under the sysfs root, with its label, base and line count. */
export async function listGpioChips(sysfsRoot: string): Promise<GpioChipInfo[]> {
  let entries: string[];
  try {
    entries = await readdir(sysfsRoot);
  } catch (error) {
    throw new GpioError('NO_CHIP', `cannot list ${sysfsRoot}: ${(error as Error).message}`, { cause: error });
  }
  const chips: GpioChipInfo[] = [];
  for (const name of entries.filter((entry) => /^gpiochip\d+$/.test(entry)).sort()) {
    const read = async (file: string): Promise<string> => (await readFile(join(sysfsRoot, name, file), 'utf8')).trim();
    chips.push({
      name,
      label: await read('label'),
      base: Number(await read('base')),
      ngpio: Number(await read('ngpio')),
    });
  }
  return chips;
}

/**
 * The sysfs GPIO number of a BCM pin. Since kernel 6.6 Raspberry Pi OS numbers sysfs GPIOs from the chip's
 * base (512 on Pi 4 and Zero 2 W, 571 on Pi 5) instead of 0, so the number is read from the chip whose label
 * the board file names, never assumed.
 */
export async function resolveSysfsGpio(sysfsRoot: string, chipLabel: string, bcmPin: number): Promise<number> {
  const chips = await listGpioChips(sysfsRoot);
  const chip = chips.find((candidate) => candidate.label === chipLabel);
  if (!chip) {
    const labels = chips.map((candidate) => `"${candidate.label}"`).join(', ') || 'none';
    throw new GpioError('NO_CHIP', `no gpiochip labelled "${chipLabel}" under ${sysfsRoot} (found ${labels})`);
  }
  if (!Number.isInteger(chip.base) || !Number.isInteger(chip.ngpio) || bcmPin < 0 || bcmPin >= chip.ngpio) {
    throw new GpioError('NO_CHIP', `pin ${bcmPin} is outside ${chip.name} "${chipLabel}" (${chip.ngpio} lines)`);
  }
  return chip.base + bcmPin;
}
