import type { UplinkMessage, UplinkTransport } from '../../firmware/uplink/types.js';

/**
 * The real transport, passed straight through: the base of the doubles below, which change only when a
 * publish resolves. The server's limits are not passed on: the pump then keeps its own window.
 */
abstract class PassThroughTransport implements UplinkTransport {
  abstract readonly protocol: string;

  constructor(protected readonly inner: UplinkTransport) {}

  connect(): Promise<void> {
    return this.inner.connect();
  }

  probe(timeoutMs: number): Promise<boolean> {
    return this.inner.probe(timeoutMs);
  }

  onDisconnect(listener: (cause: Error) => void): () => void {
    return this.inner.onDisconnect(listener);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  abstract publish(message: UplinkMessage): Promise<void>;
}

/**
 * The real mqtt transport, with the broker's PUBACKs held back until a test releases them. Real brokers
 * PUBACK in the order they received (MQTT 4.6) and answer every publish, so only this can show that the
 * store's cursor moves over contiguous acknowledgements only, and what the pump does about a PUBACK that
 * never comes while the broker answers pings. It is the one test double of the uplink: the orders it
 * produces are ones no broker here can.
 */
export class AckHoldingTransport extends PassThroughTransport {
  readonly protocol = 'holding';
  /** Seqs the broker acknowledged, held back until released. */
  readonly held = new Map<number, () => void>();

  /** `holds(seq)`: whether that message's PUBACK is held; default all. */
  constructor(
    inner: UplinkTransport,
    private readonly holds: (seq: number) => boolean = () => true,
  ) {
    super(inner);
  }

  async publish(message: UplinkMessage): Promise<void> {
    await this.inner.publish(message);
    if (!this.holds(message.seq)) return;
    await new Promise<void>((resolve) => this.held.set(message.seq, resolve));
  }

  release(seq: number): void {
    this.held.get(seq)!();
    this.held.delete(seq);
  }
}

/**
 * The real transport, with every PUBACK handed over `delayMs` after the broker sent it; a connection loss
 * discards the ones still on their way, as a TCP reset discards data the client had not read yet. A reset
 * on loopback races the PUBACKs before it; this makes the worst case (every PUBACK still in flight is lost)
 * the only case.
 */
export class SlowAckTransport extends PassThroughTransport {
  readonly protocol = 'slow-ack';
  private readonly onTheWay = new Set<(err: Error) => void>();

  constructor(
    inner: UplinkTransport,
    private readonly delayMs: number,
  ) {
    super(inner);
    inner.onDisconnect((cause) => {
      for (const reject of this.onTheWay) reject(cause);
      this.onTheWay.clear();
    });
  }

  async publish(message: UplinkMessage): Promise<void> {
    await this.inner.publish(message);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => (this.onTheWay.delete(lost), resolve()), this.delayMs);
      const lost = (err: Error) => (clearTimeout(timer), reject(err));
      this.onTheWay.add(lost);
    });
  }
}
