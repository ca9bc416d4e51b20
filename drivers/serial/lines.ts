/**
 * Longest serial line kept, in bytes, LF excluded. NMEA 0183 sentences are at most 82 characters; sensor JSON
 * lines are a few hundred. Anything longer is noise (wrong baud rate, binary protocol): counted and dropped,
 * never buffered without bound.
 */
export const SERIAL_LINE_BYTES_MAX = 512;

/**
 * Splits a byte stream into LF-terminated lines (a trailing CR is removed), holding at most `lineBytesMax`
 * bytes. @serialport/parser-readline buffers until it sees a delimiter, however long that takes; on a
 * serial line at the wrong baud rate that is forever, so this splitter bounds it.
 */
export class BoundedLineSplitter {
  private readonly buffer: Buffer;
  private length = 0;
  /** After an over-long line, bytes are skipped until the next LF: its tail is not a line of its own. */
  private discarding = false;

  constructor(
    private readonly onLine: (line: string) => void,
    private readonly onOverlong: (bytes: number) => void,
    readonly lineBytesMax: number = SERIAL_LINE_BYTES_MAX,
  ) {
    if (!Number.isInteger(lineBytesMax) || lineBytesMax < 1) {
      throw new RangeError(`"lineBytesMax" must be a positive integer, got ${lineBytesMax}`);
    }
    this.buffer = Buffer.alloc(lineBytesMax);
  }

  push(chunk: Buffer): void {
    let start = 0;
    while (start < chunk.length) {
      const newline = chunk.indexOf(0x0a, start);
      const end = newline === -1 ? chunk.length : newline;
      this.append(chunk.subarray(start, end));
      if (newline === -1) return;
      this.finishLine();
      start = newline + 1;
    }
  }

  private append(bytes: Buffer): void {
    if (this.discarding || bytes.length === 0) return;
    if (this.length + bytes.length > this.lineBytesMax) {
      this.onOverlong(this.length + bytes.length);
      this.length = 0;
      this.discarding = true;
      return;
    }
    bytes.copy(this.buffer, this.length);
    this.length += bytes.length;
  }

  private finishLine(): void {
    if (this.discarding) {
      this.discarding = false;
      return;
    }
    let end = this.length;
    if (end > 0 && this.buffer[end - 1] === 0x0d) end--;
    this.length = 0;
    if (end > 0) this.onLine(this.buffer.toString('latin1', 0, end));
  }
}
