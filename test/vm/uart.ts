// The device end of the guest's second UART (/dev/ttyS1): qemu's 16550 is wired to a host unix socket, and this
// writes a receiver capture into it at the pace of the baud rate, as the receiver would.
import { readFileSync } from 'node:fs';
import net from 'node:net';

/** 8N1: ten bit times per byte. */
const BITS_PER_BYTE = 10;
/** Bytes per write: the pace is kept per chunk, so a chunk is a few milliseconds of line time. */
const UART_CHUNK_BYTES = 64;

/** The capture's NMEA lines with CR LF endings, as the receiver sends them (gpsd's header lines dropped). */
export function captureBytes(file: string): Buffer {
  const lines = readFileSync(file, 'latin1')
    .split('\n')
    .filter((l) => l.startsWith('$'));
  return Buffer.from(lines.map((l) => `${l.replace(/\r$/, '')}\r\n`).join(''), 'latin1');
}

/** Feeds `file` into the UART for at most `durationMs`, looping the capture; resolves with the bytes written. */
export async function feedCapture(socketPath: string, file: string, baud: number, durationMs: number): Promise<number> {
  const data = captureBytes(file);
  const socket = await new Promise<net.Socket>((res, rej) => {
    const s = net.connect(socketPath, () => res(s));
    s.once('error', rej);
  });
  const bytesPerMs = baud / BITS_PER_BYTE / 1000;
  const started = Date.now();
  let sent = 0;
  while (Date.now() - started < durationMs) {
    const at = sent % data.length;
    const chunk = data.subarray(at, Math.min(at + UART_CHUNK_BYTES, data.length));
    socket.write(chunk);
    sent += chunk.length;
    const due = started + sent / bytesPerMs;
    await new Promise((r) => setTimeout(r, Math.max(0, due - Date.now())));
  }
  await new Promise<void>((res) => socket.end(() => res()));
  return sent;
}
