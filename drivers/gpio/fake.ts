import { GpioError, type DigitalPin, type GpioController, type PinLevel, type PinMode } from '../gpio-pin.js';

/** A GPIO line held in memory. Tests (and the sim board) drive inputs with setLevel(). */
export class FakePin implements DigitalPin {
  private level: PinLevel;
  private closed = false;
  private readonly listeners = new Set<(level: PinLevel) => void>();
  /** Levels written by the driver, in order, for tests that assert what an output did. */
  readonly writes: PinLevel[] = [];

  constructor(
    readonly bcmPin: number,
    readonly mode: PinMode,
    private readonly onClose: () => void,
  ) {
    this.level = mode.initial ?? 0;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  get current(): PinLevel {
    return this.level;
  }

  /** The outside world drives an input; watchers see the transitions their edge setting selects. */
  setLevel(level: PinLevel): void {
    if (this.closed || level === this.level) return;
    this.level = level;
    const edge = this.mode.edge ?? 'none';
    if (edge === 'both' || (edge === 'rising' && level === 1) || (edge === 'falling' && level === 0)) {
      for (const listener of [...this.listeners]) listener(level);
    }
  }

  async read(): Promise<PinLevel> {
    if (this.closed) throw new GpioError('CLOSED', `BCM ${this.bcmPin} is closed`);
    return this.level;
  }

  async write(level: PinLevel): Promise<void> {
    if (this.closed) throw new GpioError('CLOSED', `BCM ${this.bcmPin} is closed`);
    if (this.mode.direction !== 'out') throw new GpioError('DIRECTION', `BCM ${this.bcmPin} is an input`);
    this.level = level;
    this.writes.push(level);
  }

  watch(listener: (level: PinLevel) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listeners.clear();
    this.onClose();
  }
}

/** A gpiochip in memory. `failOpen` makes open() fail as an unexportable line does. */
export class FakeGpioController implements GpioController {
  readonly pins = new Map<number, FakePin>();
  failOpen = false;
  /** Levels inputs start at when opened (the outside world's state), by BCM pin. */
  readonly inputLevels = new Map<number, PinLevel>();

  async open(bcmPin: number, mode: PinMode): Promise<DigitalPin> {
    if (this.failOpen) throw new GpioError('IO', `cannot export BCM ${bcmPin} (injected)`);
    if (this.pins.has(bcmPin)) throw new GpioError('BUSY', `BCM ${bcmPin} is already open`);
    const pin = new FakePin(
      bcmPin,
      { ...mode, initial: mode.direction === 'in' ? (this.inputLevels.get(bcmPin) ?? 0) : (mode.initial ?? 0) },
      () => this.pins.delete(bcmPin),
    );
    this.pins.set(bcmPin, pin);
    return pin;
  }

  /** The outside world sets an input's level, whether or not a driver has the pin open right now. */
  drive(bcmPin: number, level: PinLevel): void {
    this.inputLevels.set(bcmPin, level);
    const pin = this.pins.get(bcmPin);
    if (pin && pin.mode.direction === 'in') pin.setLevel(level);
  }

  pin(bcmPin: number): FakePin {
    const pin = this.pins.get(bcmPin);
    if (!pin) throw new Error(`BCM ${bcmPin} is not open`);
    return pin;
  }

  async close(): Promise<void> {
    await Promise.all([...this.pins.values()].map((pin) => pin.close()));
  }
}
