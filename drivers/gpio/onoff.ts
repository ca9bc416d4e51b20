import type { GpioBusConfig } from '../../firmware/config/types.js';
import { GpioError, type DigitalPin, type GpioController, type PinLevel, type PinMode } from '../gpio-pin.js';
import { resolveSysfsGpio } from './sysfs.js';

/** The subset of onoff's Gpio class used here. */
interface OnoffGpio {
  read(): Promise<number>;
  write(value: number): Promise<void>;
  watch(callback: (err: Error | null | undefined, value: number) => void): void;
  unwatch(callback?: (err: Error | null | undefined, value: number) => void): void;
  unexport(): void;
}
type OnoffGpioConstructor = new (gpio: number, direction: string, edge?: string) => OnoffGpio;

/**
 * GPIO through the kernel's sysfs interface, by onoff. onoff is imported lazily: it is an optional
 * dependency with a native part (epoll) that the sim board and the tests must never need.
 */
export async function openSysfsGpio(config: GpioBusConfig): Promise<GpioController> {
  const moduleName = 'onoff';
  const onoff = (await import(moduleName)) as { Gpio?: OnoffGpioConstructor; default?: { Gpio: OnoffGpioConstructor } };
  const Gpio = onoff.Gpio ?? onoff.default?.Gpio;
  if (!Gpio) throw new GpioError('IO', 'onoff does not export Gpio');
  const open = new Map<number, DigitalPin>();
  return {
    async open(bcmPin: number, mode: PinMode): Promise<DigitalPin> {
      if (open.has(bcmPin)) throw new GpioError('BUSY', `BCM ${bcmPin} is already open`);
      const sysfsNumber = await resolveSysfsGpio(config.sysfsRoot, config.chipLabel, bcmPin);
      // onoff's "high"/"low" directions configure an output and set its level in one step (no glitch).
      const direction = mode.direction === 'in' ? 'in' : mode.initial === 1 ? 'high' : 'low';
      let gpio: OnoffGpio;
      try {
        gpio = new Gpio(sysfsNumber, direction, mode.direction === 'in' ? (mode.edge ?? 'none') : 'none');
      } catch (error) {
        throw new GpioError('IO', `cannot export GPIO ${sysfsNumber} (BCM ${bcmPin}): ${(error as Error).message}`, {
          cause: error,
        });
      }
      const pin = new OnoffPin(gpio, mode, () => open.delete(bcmPin));
      open.set(bcmPin, pin);
      return pin;
    },
    async close(): Promise<void> {
      await Promise.all([...open.values()].map((pin) => pin.close()));
    },
  };
}

class OnoffPin implements DigitalPin {
  private closed = false;

  constructor(
    private readonly gpio: OnoffGpio,
    private readonly mode: PinMode,
    private readonly onClose: () => void,
  ) {}

  async read(): Promise<PinLevel> {
    this.assertOpen();
    return (await this.gpio.read()) ? 1 : 0;
  }

  async write(level: PinLevel): Promise<void> {
    this.assertOpen();
    if (this.mode.direction !== 'out') throw new GpioError('DIRECTION', 'write on an input pin');
    await this.gpio.write(level);
  }

  watch(listener: (level: PinLevel) => void): () => void {
    const callback = (err: Error | null | undefined, value: number): void => {
      if (!err) listener(value ? 1 : 0);
    };
    this.gpio.watch(callback);
    return () => this.gpio.unwatch(callback);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.gpio.unwatch();
    this.gpio.unexport();
    this.onClose();
  }

  private assertOpen(): void {
    if (this.closed) throw new GpioError('CLOSED', 'pin is closed');
  }
}
