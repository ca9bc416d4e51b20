import type { UplinkMessage, UplinkTransport } from '../../firmware/uplink/types.js';

/**
 * The real mqtt transport, with the broker's PUBACKs held back until a test releases them. Real brokers
 * PUBACK in the order they received (MQTT 4.6) and answer every publish, so only this can show that the
 * store's cursor moves over contiguous acknowledgements only, and what the pump does about a PUBACK that
 * never comes while the broker answers pings. It is the one test double of the uplink: the orders it
 * produces are ones no broker here can.
 */
export class AckHoldingTransport implements UplinkTransport {
  readonly protocol = 'holding';
  /** Seqs the broker acknowledged, held back until released. */
  readonly held = new Map<number, () => void>();

  /** `holds(seq)`: whether that message's PUBACK is held; default all. */
  constructor(
    private readonly inner: UplinkTransport,
    private readonly holds: (seq: number) => boolean = () => true,
  ) {}

  connect = () => this.inner.connect();
  probe = (timeoutMs: number) => this.inner.probe(timeoutMs);
  onDisconnect = (listener: (cause: Error) => void) => this.inner.onDisconnect(listener);
  destroy = () => this.inner.destroy();
  close = () => this.inner.close();

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
