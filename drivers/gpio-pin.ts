export type PinLevel = 0 | 1;
export type Edge = 'none' | 'rising' | 'falling' | 'both';

export interface PinMode {
  direction: 'in' | 'out';
  /** Which transitions call watch() listeners; inputs only. Default 'none'. */
  edge?: Edge;
  /** Level an output drives as soon as it is opened, so a relay does not glitch at start. Default 0. */
  initial?: PinLevel;
}

/**
 * One GPIO line. The contract every implementation keeps (onoff over sysfs, the fake pin) and
 * test/drivers/gpio/pin.contract.test.ts checks:
 *
 * - `read()` resolves with the line's current level (an output reads back what it drives).
 * - `write(level)` drives an output; on an input it rejects with GpioError code 'DIRECTION'.
 * - `watch(listener)` on an input opened with an edge other than 'none' calls listener(level) once per
 *   matching transition, in order; it returns a function that removes the listener.
 * - `close()` releases the line; later reads and writes reject with code 'CLOSED'; close() is idempotent.
 */
export interface DigitalPin {
  read(): Promise<PinLevel>;
  write(level: PinLevel): Promise<void>;
  watch(listener: (level: PinLevel) => void): () => void;
  close(): Promise<void>;
}

/** A GPIO controller (one gpiochip). Pins are named by their BCM number, as on the Pi's header diagrams. */
export interface GpioController {
  /** Rejects with GpioError code 'BUSY' if the pin is already open, 'IO' if it cannot be exported. */
  open(bcmPin: number, mode: PinMode): Promise<DigitalPin>;
  close(): Promise<void>;
}

export type GpioErrorCode = 'DIRECTION' | 'CLOSED' | 'BUSY' | 'IO' | 'NO_CHIP';

export class GpioError extends Error {
  readonly code: GpioErrorCode;

  constructor(code: GpioErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'GpioError';
    this.code = code;
  }
}

/** The BCM2711/BCM2712 header exposes GPIO 0-27 (Raspberry Pi GPIO documentation, "GPIO pinout"). */
export const BCM_PIN_MAX = 27;
