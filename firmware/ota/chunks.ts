/**
 * An artifact published over MQTT in chunks, for sites whose only route is the uplink's broker. The manifest's
 * `chunks` says where: `{ "topic": "outpost/<gatewayId>/update/chunk", "size": 65536, "count": 512 }`, and
 * chunk n (from 0) is the retained message on `<topic>/<n>`, `size` bytes each but the last (the rest).
 *
 * Retained messages, not a request/response exchange, because that is what an operator can publish with the
 * broker's own tools and nothing running beside it:
 *
 *     split -b 65536 -d -a 6 outpost-1.4.0-linux-arm64.tar.gz part.
 *     n=0; for f in part.*; do mosquitto_pub -r -q 1 -t outpost/gw-17/update/chunk/$n -f "$f"; n=$((n+1)); done
 *
 * and because a retained message is there whenever the gateway asks: subscribing to `<topic>/<n>` is the
 * request for chunk n, after an outage, a reboot, or a broker restart (mosquitto persists retained messages),
 * so resuming by chunk index needs no state at the publisher. A fleet may share one topic (a release is the
 * same bytes for every gateway of a target): the topic is not signed, as the URL is not; sha256 and bytes are.
 */

export interface ChunkSource {
  /** Topic prefix; chunk n is the retained message on `<topic>/<n>`. No wildcards, no trailing '/'. */
  topic: string;
  /** Bytes per chunk (the last one holds the rest). */
  size: number;
  /** Number of chunks: ceil(bytes / size). */
  count: number;
}

/**
 * Smallest and largest chunk, bytes. Below 1 KiB the per-message overhead (topic, PUBLISH, PUBACK) dominates;
 * above 256 KiB a chunk is over many brokers' default message size limits (and is held in memory whole).
 */
export const OTA_CHUNK_BYTES_MIN = 1024;
export const OTA_CHUNK_BYTES_MAX = 256 * 1024;
/** A topic longer than this is not one an operator typed, bytes (MQTT allows 65535; brokers less). */
const CHUNK_TOPIC_BYTES_MAX = 512;

/** The topic of chunk `index`. */
export function chunkTopic(chunks: ChunkSource, index: number): string {
  return `${chunks.topic}/${index}`;
}

/** How many bytes chunk `index` must hold for an artifact of `bytes`. */
export function chunkBytes(chunks: ChunkSource, bytes: number, index: number): number {
  return index < chunks.count - 1 ? chunks.size : bytes - (chunks.count - 1) * chunks.size;
}

/** What is wrong with a `chunks` value for an artifact of `bytes`, or null when it is usable (absent is). */
export function chunkSourceProblem(value: unknown, bytes: number): string | null {
  if (value === undefined) return null;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'must be {topic, size, count}';
  const { topic, size, count } = value as Record<string, unknown>;
  const okTopic =
    typeof topic === 'string' &&
    topic.length > 0 &&
    Buffer.byteLength(topic) <= CHUNK_TOPIC_BYTES_MAX &&
    !/[#+\0]/.test(topic) &&
    !topic.endsWith('/');
  if (!okTopic) return `topic must be an MQTT topic without wildcards or a trailing '/', got ${JSON.stringify(topic)}`;
  if (!Number.isSafeInteger(size) || (size as number) < OTA_CHUNK_BYTES_MIN || (size as number) > OTA_CHUNK_BYTES_MAX) {
    return `size must be an integer ${OTA_CHUNK_BYTES_MIN}..${OTA_CHUNK_BYTES_MAX}, got ${JSON.stringify(size)}`;
  }
  const expected = Math.ceil(bytes / (size as number));
  if (count !== expected) return `count must be ceil(bytes / size) = ${expected}, got ${JSON.stringify(count)}`;
  return null;
}
