import mqtt, { type MqttClient } from 'mqtt';
import { sideChannelOptions, type SideChannelBroker } from '../side-channel.js';
import { chunkBytes, chunkTopic, type ChunkSource } from './chunks.js';
import { OtaFetchError } from './fetch-error.js';

/**
 * Reads an artifact's retained chunks (firmware/ota/chunks.ts) from the uplink's broker, in order, from the
 * byte the part file already holds: subscribing to `<topic>/<n>` asks for chunk n, a window of
 * OTA_CHUNK_WINDOW_MAX subscriptions ahead keeps a slow link busy, and each chunk is unsubscribed once taken.
 * The consumer (the download) pulls one chunk at a time and throttles before it pulls the next, so the window
 * bounds both the memory held and how far the broker can run ahead of the bandwidth cap.
 */

/** Chunks asked for at once: with 64 KiB chunks, 256 KiB in memory at most and 4 round trips in flight. */
export const OTA_CHUNK_WINDOW_MAX = 4;
/** How long a chunk may take to arrive after its subscription before the attempt is given up and retried, ms. */
export const OTA_CHUNK_WAIT_MS = 30_000;
/** The connection's own connect timeout, ms: the uplink reached this broker moments ago. */
const CHUNK_CONNECT_TIMEOUT_MS = 10_000;

export interface ChunkReadOptions {
  broker: SideChannelBroker;
  chunks: ChunkSource;
  /** The artifact's size (the last chunk holds the rest). */
  bytes: number;
  /** First byte wanted: the part's length. A part cut mid-chunk resumes with that chunk, its head skipped. */
  from: number;
  signal?: AbortSignal;
  /** Per-chunk wait, ms (default OTA_CHUNK_WAIT_MS). */
  waitMs?: number;
}

export async function* readChunks(o: ChunkReadOptions): AsyncGenerator<Buffer> {
  const { chunks } = o;
  const reader = new ChunkWindow(o, await connectBroker(o));
  try {
    let skip = o.from % chunks.size;
    for (let index = Math.floor(o.from / chunks.size); index < chunks.count; index += 1) {
      reader.askUpTo(Math.min(chunks.count, index + OTA_CHUNK_WINDOW_MAX));
      const payload = await reader.next(index);
      yield skip > 0 ? payload.subarray(skip) : payload;
      skip = 0;
    }
  } finally {
    await reader.close();
  }
}

async function connectBroker(o: ChunkReadOptions): Promise<MqttClient> {
  const { broker } = o;
  try {
    // One attempt per download attempt (reconnectPeriodMs 0): the download's own backoff decides when to retry.
    const timing = { reconnectPeriodMs: 0, connectTimeoutMs: CHUNK_CONNECT_TIMEOUT_MS };
    return await mqtt.connectAsync(broker.url, sideChannelOptions(broker, timing));
  } catch (err) {
    throw new OtaFetchError('TRANSIENT', 'network', `${broker.url}: ${(err as Error).message}`, { cause: err });
  }
}

/** The subscriptions in flight and the chunks that arrived for them. */
class ChunkWindow {
  private readonly held = new Map<number, Buffer>();
  /** Next chunk index not yet subscribed to. */
  private asked: number;
  private first: number;
  private failure: OtaFetchError | null = null;
  private wake: (() => void) | null = null;

  constructor(
    private readonly o: ChunkReadOptions,
    private readonly client: MqttClient,
  ) {
    this.first = Math.floor(o.from / o.chunks.size);
    this.asked = this.first;
    client.on('message', (topic, payload) => this.arrived(topic, payload));
    const lost = (why: string) => this.fail(new OtaFetchError('TRANSIENT', 'network', `${o.broker.url}: ${why}`));
    client.on('close', () => lost('connection lost'));
    client.on('error', (err) => lost(err.message));
  }

  askUpTo(end: number): void {
    for (; this.asked < end; this.asked += 1) {
      const topic = chunkTopic(this.o.chunks, this.asked);
      this.client.subscribe(topic, { qos: 1 }, (err, granted) => {
        const code = granted?.[0]?.qos ?? 0;
        if (err || code >= 0x80) {
          const why = err?.message ?? `SUBACK 0x${code.toString(16)}`;
          this.fail(new OtaFetchError('TRANSIENT', 'chunk-denied', `${this.o.broker.url}: ${topic}: ${why}`));
        }
      });
    }
  }

  /** Chunk `index`, checked for its size; its subscription is dropped once it is here. */
  async next(index: number): Promise<Buffer> {
    this.first = index;
    const waitMs = this.o.waitMs ?? OTA_CHUNK_WAIT_MS;
    const topic = chunkTopic(this.o.chunks, index);
    const deadline = setTimeout(() => {
      this.fail(new OtaFetchError('TRANSIENT', 'chunk-missing', `no retained chunk on ${topic} within ${waitMs} ms`));
    }, waitMs);
    const onAbort = () => this.fail(new OtaFetchError('ABORTED', 'stopped', 'download stopped'));
    this.o.signal?.addEventListener('abort', onAbort);
    try {
      // A stop is looked at before a chunk already here: nothing more is written once the download is stopped.
      for (;;) {
        if (this.o.signal?.aborted) onAbort();
        if (this.failure !== null) throw this.failure;
        if (this.held.has(index)) break;
        await new Promise<void>((resolve) => (this.wake = resolve));
      }
    } finally {
      clearTimeout(deadline);
      this.o.signal?.removeEventListener('abort', onAbort);
    }
    const payload = this.held.get(index)!;
    this.held.delete(index);
    this.client.unsubscribe(topic, () => {});
    const expected = chunkBytes(this.o.chunks, this.o.bytes, index);
    if (payload.length !== expected) {
      throw new OtaFetchError(
        'REFUSED',
        'chunk-size',
        `${topic} holds ${payload.length} bytes, the manifest's ` + `chunks say ${expected}`,
      );
    }
    return payload;
  }

  async close(): Promise<void> {
    this.held.clear();
    await this.client.endAsync(true).catch(() => {});
  }

  /** Keeps only chunks of the window asked for: anything else on the connection is not ours. */
  private arrived(topic: string, payload: Buffer): void {
    const prefix = `${this.o.chunks.topic}/`;
    if (!topic.startsWith(prefix)) return;
    const text = topic.slice(prefix.length);
    if (!/^(0|[1-9]\d{0,8})$/.test(text)) return;
    const index = Number(text);
    if (index < this.first || index >= this.asked || this.held.has(index)) return;
    this.held.set(index, payload);
    this.wakeUp();
  }

  private fail(err: OtaFetchError): void {
    this.failure ??= err;
    this.wakeUp();
  }

  private wakeUp(): void {
    const wake = this.wake;
    this.wake = null;
    wake?.();
  }
}
