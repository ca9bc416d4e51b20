import type { DriverContext } from '../model.js';
import { BoundedLineSplitter } from './lines.js';
import type { SerialOpener, SerialStream } from '../serial-port.js';

/**
 * The shared life cycle of line-oriented serial devices: open the port, split what arrives into bounded
 * lines, hand each to `onLine`, and turn an unexpected close (device unplugged) into a fault so the runner
 * reopens it with backoff.
 */
export class SerialLines {
  private port: SerialStream | undefined;
  private closing = false;

  constructor(
    private readonly ctx: DriverContext<unknown>,
    private readonly opener: SerialOpener,
    private readonly lineBytesMax: number,
    private readonly onLine: (line: string) => void,
  ) {}

  async open(): Promise<void> {
    const splitter = new BoundedLineSplitter(
      (line) => this.onLine(line),
      (bytes) => this.ctx.malformed(`line longer than ${this.lineBytesMax} bytes (${bytes}+)`),
      this.lineBytesMax,
    );
    const port = await this.opener.open();
    this.port = port;
    port.onData((chunk) => splitter.push(chunk));
    port.onClose((error) => {
      if (!this.closing) this.ctx.fault(error ?? new Error('serial port closed'));
    });
  }

  async close(): Promise<void> {
    this.closing = true;
    const port = this.port;
    this.port = undefined;
    await port?.close();
  }
}
