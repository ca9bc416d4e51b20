import type { StoredRecord } from '../store/types.js';
import { RECORD_KEY } from '../uplink/message.js';
import { LOCAL_KEY, type LocalEndpointLane } from '../router/router.js';
import { DEVICEBOUND_SUBSCRIPTION, topic } from './topics.js';
import type { MethodTarget } from './methods.js';

/**
 * Delivers one local endpoint's lane to its device while it is connected and subscribed to cloud-to-device
 * messages — the topic unmodified SDK device clients already listen on (`client.on('message')`) — with the
 * input named in the property bag (`inputName`, and `$.to` = `/devices/<id>/inputs/<name>` as IoT Edge sets
 * it); a module gets them on its inputs topic, as IoT Edge delivers them. The lane is acked only over contiguous PUBACKs, so messages survive outages and restarts; a message
 * in flight when the child drops is sent again (at-least-once).
 */

/** QoS 1 messages in flight to one child per endpoint, messages. */
export const DELIVERY_WINDOW_MAX = 16;

export class EndpointDelivery {
  delivered = 0;
  private nextSeq: number;
  private inflight = new Map<number, boolean>();
  private active = false;
  private reading = false;
  private generation = 0;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly endpoint: LocalEndpointLane,
    private readonly target: MethodTarget,
  ) {
    this.nextSeq = endpoint.lane.ackedSeq() + 1;
    this.unsubscribe = endpoint.lane.onDurable(() => this.pump());
  }

  get deviceId(): string {
    return this.endpoint.deviceId;
  }

  backlog(): number {
    return Math.max(0, this.endpoint.lane.lastDurableSeq() - this.endpoint.lane.ackedSeq());
  }

  /** The device connected or subscribed: start sending from the oldest unacknowledged record. */
  resume(): void {
    if (
      !this.target.isConnected(this.deviceId) ||
      !this.target.isSubscribed(this.deviceId, DEVICEBOUND_SUBSCRIPTION(this.deviceId))
    )
      return;
    if (this.active) return;
    this.active = true;
    this.generation += 1;
    this.nextSeq = this.endpoint.lane.ackedSeq() + 1;
    this.inflight.clear();
    this.pump();
  }

  pause(): void {
    this.active = false;
    this.generation += 1;
  }

  private pump(): void {
    if (!this.active || this.reading || this.inflight.size >= DELIVERY_WINDOW_MAX) return;
    const durableAtAsk = this.endpoint.lane.lastDurableSeq();
    if (this.nextSeq > durableAtAsk) return;
    this.reading = true;
    const generation = this.generation;
    this.endpoint.lane
      .read(this.nextSeq, { recordsMax: DELIVERY_WINDOW_MAX - this.inflight.size })
      .then((records) => {
        this.reading = false;
        if (generation !== this.generation) return;
        for (const record of records) this.send(record, generation);
        // Every record durable at the ask had expired: step past those only. The durable seq now may count
        // records committed after the read had looked, and skipping them would lose their delivery.
        if (records.length === 0) this.nextSeq = Math.max(this.nextSeq, durableAtAsk + 1);
        this.pump();
      })
      .catch(() => {
        this.reading = false;
      });
  }

  private send(record: StoredRecord, generation: number): void {
    this.nextSeq = record.seq + 1;
    this.inflight.set(record.seq, false);
    const input = record.properties[LOCAL_KEY.input] ?? this.endpoint.input;
    const bag: Record<string, string> = {};
    for (const [key, value] of Object.entries(record.properties)) if (!key.startsWith('$')) bag[key] = value;
    bag.inputName = input;
    const [device, moduleId] = this.deviceId.split('/');
    bag['$.to'] =
      moduleId === undefined
        ? `/devices/${device}/inputs/${input}`
        : `/devices/${device}/modules/${moduleId}/inputs/${input}`;
    bag['$.cdid'] = record.properties[RECORD_KEY.deviceId] ?? '';
    if (record.properties[RECORD_KEY.contentType]) bag['$.ct'] = record.properties[RECORD_KEY.contentType];
    if (record.properties[RECORD_KEY.contentEncoding]) bag['$.ce'] = record.properties[RECORD_KEY.contentEncoding];
    this.target.deliver(this.deviceId, topic.deviceBound(this.deviceId, bag, input), record.body, 1).then(
      () => {
        if (generation !== this.generation) return;
        this.inflight.set(record.seq, true);
        this.ackContiguous();
        this.pump();
      },
      () => {
        if (generation === this.generation) this.pause();
      },
    );
  }

  private ackContiguous(): void {
    let upTo = -1;
    for (const [seq, done] of [...this.inflight].sort((a, b) => a[0] - b[0])) {
      if (!done) break;
      upTo = seq;
      this.inflight.delete(seq);
      this.delivered += 1;
    }
    if (upTo >= 0) this.endpoint.lane.ack(upTo);
  }

  close(): void {
    this.pause();
    this.unsubscribe();
  }
}
