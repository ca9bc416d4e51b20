import { stat } from 'node:fs/promises';
import type { SerialBusConfig } from '../../firmware/config/types.js';
import type { SerialOpener, SerialStream } from '../serial-port.js';

/** The subset of serialport's SerialPort used here. */
interface SerialPortLike {
  open(callback: (error: Error | null) => void): void;
  close(callback: (error: Error | null) => void): void;
  write(data: Buffer, callback: (error: Error | null | undefined) => void): boolean;
  drain(callback: (error: Error | null) => void): void;
  on(event: 'data', listener: (chunk: Buffer) => void): void;
  on(event: 'end', listener: () => void): void;
  on(event: 'close', listener: (error?: Error | null) => void): void;
  on(event: 'error', listener: (error: Error) => void): void;
  readonly isOpen: boolean;
}
type SerialPortConstructor = new (options: { path: string; baudRate: number; autoOpen: boolean }) => SerialPortLike;

/**
 * A real tty (or pty) through serialport. Imported lazily so the sim board never loads its native binding.
 */
export function serialportOpener(config: Pick<SerialBusConfig, 'path' | 'baudRate'>): SerialOpener {
  return {
    async open(): Promise<SerialStream> {
      const moduleName = 'serialport';
      const { SerialPort } = (await import(moduleName)) as { SerialPort: SerialPortConstructor };
      const port = new SerialPort({ path: config.path, baudRate: config.baudRate, autoOpen: false });
      await new Promise<void>((resolve, reject) => port.open((error) => (error ? reject(error) : resolve())));
      return new SerialportStream(port, config.path);
    },
  };
}

/** How often an open port's path is checked for presence: an unplugged USB adapter's node goes away, ms. */
export const SERIAL_PRESENCE_CHECK_MS = 1_000;

class SerialportStream implements SerialStream {
  private closeListeners: ((error?: Error) => void)[] = [];
  private closedByOwner = false;
  private lastError: Error | undefined;
  private closed = false;
  private readonly presence: NodeJS.Timeout;

  constructor(
    private readonly port: SerialPortLike,
    private readonly path: string,
  ) {
    // serialport emits 'error' for read failures (EIO when a pty master goes away) and then 'close'
    // with a DisconnectedError; either way the owner hears about it once, through onClose.
    port.on('error', (error) => {
      this.lastError = error;
    });
    port.on('close', (error) => this.finish(error ?? this.lastError));
    // A read of 0 bytes ends the stream without 'close' (seen with a pty whose master went away): gone too.
    port.on('end', () => void this.gone(new Error(`${path}: end of file (the device went away)`)));
    // Neither event is promised when a device node vanishes (USB unplug, socat gone): look for it.
    this.presence = setInterval(() => {
      stat(this.path).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') void this.gone(new Error(`${this.path} is gone`));
      });
    }, SERIAL_PRESENCE_CHECK_MS).unref();
  }

  /** The device went away without serialport saying so: close what is left and report it once. */
  private async gone(error: Error): Promise<void> {
    if (this.closed || this.closedByOwner) return;
    this.lastError = error;
    if (this.port.isOpen) await new Promise<void>((resolve) => this.port.close(() => resolve()));
    this.finish(error);
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.port.on('data', listener);
  }

  onClose(listener: (error?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  write(data: Buffer): Promise<void> {
    return new Promise((resolve, reject) => {
      this.port.write(data, (error) => {
        if (error) return reject(error);
        this.port.drain((drainError) => (drainError ? reject(drainError) : resolve()));
      });
    });
  }

  async close(): Promise<void> {
    this.closedByOwner = true;
    if (!this.port.isOpen) return this.finish(undefined);
    await new Promise<void>((resolve) => this.port.close(() => resolve()));
    this.finish(undefined);
  }

  private finish(error: Error | null | undefined): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.presence);
    const reported = this.closedByOwner ? undefined : (error ?? new Error('serial port closed'));
    for (const listener of this.closeListeners) listener(reported);
  }
}
