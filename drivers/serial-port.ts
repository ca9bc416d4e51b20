/**
 * A byte stream to one serial device. The contract every implementation keeps (serialport on a tty or pty,
 * the fake stream) and test/drivers/serial/port.contract.test.ts checks:
 *
 * - `onData` listeners receive chunks in arrival order; chunk boundaries carry no meaning (a line may
 *   arrive in several chunks, or several lines in one).
 * - When the device goes away (USB unplugged, pty master closed) `onClose` listeners are called once with
 *   an error. When the owner calls close(), they are called once without one.
 * - `write` resolves once the bytes are handed to the operating system.
 */
export interface SerialStream {
  onData(listener: (chunk: Buffer) => void): void;
  onClose(listener: (error?: Error) => void): void;
  write(data: Buffer): Promise<void>;
  close(): Promise<void>;
}

/** Opens the serial device named by a board's serial bus; rejects when the device is absent. */
export interface SerialOpener {
  open(): Promise<SerialStream>;
}
