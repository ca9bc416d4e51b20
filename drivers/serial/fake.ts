import type { SerialOpener, SerialStream } from '../serial-port.js';

/** A serial stream in memory: tests push bytes in with inject() and pull the plug with vanish(). */
export class FakeSerialStream implements SerialStream {
  private readonly dataListeners: ((chunk: Buffer) => void)[] = [];
  private readonly closeListeners: ((error?: Error) => void)[] = [];
  private closed = false;
  readonly written: Buffer[] = [];

  get isClosed(): boolean {
    return this.closed;
  }

  inject(data: Buffer | string): void {
    if (this.closed) return;
    const chunk = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    for (const listener of this.dataListeners) listener(chunk);
  }

  /** The device goes away: listeners hear one close with an error, as with an unplugged USB adapter. */
  vanish(error = new Error('device disconnected')): void {
    this.finish(error);
  }

  onData(listener: (chunk: Buffer) => void): void {
    this.dataListeners.push(listener);
  }

  onClose(listener: (error?: Error) => void): void {
    this.closeListeners.push(listener);
  }

  async write(data: Buffer): Promise<void> {
    if (this.closed) throw new Error('port is closed');
    this.written.push(Buffer.from(data));
  }

  async close(): Promise<void> {
    this.finish(undefined);
  }

  private finish(error: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    for (const listener of this.closeListeners) listener(error);
  }
}

/** Opens FakeSerialStreams; while `present` is false, open() fails as for a missing /dev/ttyUSB0. */
export class FakeSerialOpener implements SerialOpener {
  present = true;
  readonly opened: FakeSerialStream[] = [];

  async open(): Promise<SerialStream> {
    if (!this.present) throw Object.assign(new Error('ENOENT: no such file or directory'), { code: 'ENOENT' });
    const stream = new FakeSerialStream();
    this.opened.push(stream);
    return stream;
  }

  /** The most recently opened stream. */
  get current(): FakeSerialStream {
    const stream = this.opened[this.opened.length - 1];
    if (!stream) throw new Error('no stream opened yet');
    return stream;
  }
}
