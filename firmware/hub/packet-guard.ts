import type { Duplex } from 'node:stream';

/**
 * Refuses oversize MQTT packets from the fixed header alone. aedes's parser (mqtt-packet) has no size limit:
 * it buffers a whole packet, up to MQTT's 256 MB, before the hub's publish checks ever see it. This reads
 * each packet's remaining length (MQTT 3.1.1 §2.2.3, MQTT 5 §2.1.4: a variable byte integer of 1 to 4
 * bytes, 7 bits each, high bit = more) as the bytes go by, so a packet over the limit ends the connection
 * before its body is buffered — at most the one chunk that carried its header has been read.
 */

/** A remaining length takes at most 4 bytes (MQTT 3.1.1 §2.2.3). */
const REMAINING_LENGTH_BYTES_MAX = 4;

export type GuardVerdict = 'ok' | 'too-big' | 'malformed';

export class PacketSizeGuard {
  /** Body bytes of the current packet still to pass; while 0, a fixed header is being read. */
  private bodyBytesLeft = 0;
  private inHeader = false;
  private lengthBytes = 0;
  private length = 0;
  private multiplier = 1;

  /** `packetBytesMax` bounds a whole packet: fixed header, variable header and payload. */
  constructor(private readonly packetBytesMax: number) {
    if (!Number.isSafeInteger(packetBytesMax) || packetBytesMax < 2)
      throw new RangeError(`"packetBytesMax" must be an integer of at least 2, got ${packetBytesMax}`);
  }

  /** Looks at the next bytes of the stream; the first verdict other than 'ok' is final. */
  feed(chunk: Buffer): GuardVerdict {
    let at = 0;
    while (at < chunk.length) {
      if (this.bodyBytesLeft > 0) {
        const skip = Math.min(this.bodyBytesLeft, chunk.length - at);
        this.bodyBytesLeft -= skip;
        at += skip;
        continue;
      }
      const byte = chunk[at];
      at += 1;
      if (!this.inHeader) {
        // The first byte is the packet type and flags; the remaining length follows.
        this.inHeader = true;
        this.lengthBytes = 0;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      this.lengthBytes += 1;
      if ((byte & 0x80) !== 0) {
        if (this.lengthBytes >= REMAINING_LENGTH_BYTES_MAX) return 'malformed';
        continue;
      }
      if (1 + this.lengthBytes + this.length > this.packetBytesMax) return 'too-big';
      this.inHeader = false;
      this.bodyBytesLeft = this.length;
    }
    return 'ok';
  }
}

/**
 * Puts a guard on a socket before aedes reads it. aedes pulls data with `conn.read()` on 'readable'; the
 * guard wraps that one method on the instance rather than wrapping the socket in another stream, because the
 * authenticator needs the socket itself (TLS peer certificate, remote address).
 */
export function guardSocket(
  socket: Duplex,
  packetBytesMax: number,
  onRefused: (verdict: Exclude<GuardVerdict, 'ok'>) => void,
): void {
  const guard = new PacketSizeGuard(packetBytesMax);
  const read = socket.read.bind(socket);
  let refused = false;
  socket.read = (size?: number) => {
    if (refused) return null;
    const chunk: unknown = read(size);
    if (!Buffer.isBuffer(chunk)) return chunk;
    const verdict = guard.feed(chunk);
    if (verdict === 'ok') return chunk;
    refused = true;
    onRefused(verdict);
    socket.destroy();
    return null;
  };
}
