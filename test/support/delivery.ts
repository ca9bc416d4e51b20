import mqtt, { type IPublishPacket, type MqttClient } from 'mqtt';
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * The far side of the uplink in tests: a plain mqtt.js subscriber straight at the broker (never through the
 * fault proxy), and the rule every delivery must satisfy.
 */
export class Subscriber {
  /** Message bodies as numbers, in arrival order. */
  readonly values: number[] = [];
  readonly packets: IPublishPacket[] = [];
  /** Packets kept whole for property checks; the rest only as numbers. */
  static readonly PACKETS_KEPT_MAX = 1_000;

  private constructor(private readonly client: MqttClient) {}

  static async start(url: string, topic: string, opts: { protocolVersion?: 4 | 5 } = {}): Promise<Subscriber> {
    // A persistent QoS 1 session: nothing the broker accepted may be lost on our side of the test either.
    const client = mqtt.connect(url, {
      clientId: `test-sub-${process.pid}-${Math.random().toString(16).slice(2)}`,
      clean: false,
      reconnectPeriod: 200,
      protocolVersion: opts.protocolVersion ?? 4,
      ...(opts.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 600 } } : {}),
    });
    const subscriber = new Subscriber(client);
    client.on('message', (_topic, payload, packet) => {
      subscriber.values.push(Number(payload.toString()));
      if (subscriber.packets.length < Subscriber.PACKETS_KEPT_MAX) subscriber.packets.push(packet);
    });
    client.on('error', () => {});
    await new Promise<void>((resolve) => client.once('connect', () => resolve()));
    await client.subscribeAsync(topic, { qos: 1 });
    return subscriber;
  }

  /** Waits until `count` distinct values arrived; false on timeout. */
  async waitForDistinct(count: number, timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (new Set(this.values).size >= count) return true;
      await sleep(20);
    }
    return false;
  }

  async close(): Promise<void> {
    await this.client.endAsync(true);
  }
}

/**
 * At-least-once, in order, duplicates only within the in-flight window: the arrivals must be runs of
 * consecutive values; a new run (a replay after a reconnect) may start at most `windowMax` below the highest
 * value seen so far and never above it + 1; and together they cover 1..total.
 */
export function checkDelivery(
  values: number[],
  total: number,
  windowMax: number,
): { problems: string[]; replays: number; duplicates: number } {
  const problems: string[] = [];
  let highest = 0;
  let previous = 0;
  let replays = 0;
  for (const [index, value] of values.entries()) {
    if (value === previous + 1 && value <= highest + 1) {
      previous = value;
      highest = Math.max(highest, value);
      continue;
    }
    replays += 1;
    if (value > highest + 1)
      problems.push(`#${index}: ${value} after highest ${highest}: ${highest + 1}..${value - 1} skipped`);
    if (value <= highest - windowMax)
      problems.push(`#${index}: replay from ${value}, more than ${windowMax} below ${highest}`);
    previous = value;
    highest = Math.max(highest, value);
    if (problems.length > 10) break;
  }
  if (highest !== total) problems.push(`highest value ${highest}, expected ${total}`);
  const distinct = new Set(values).size;
  if (distinct !== total) problems.push(`${distinct} distinct values, expected ${total}`);
  return { problems, replays, duplicates: values.length - distinct };
}
