import t from 'tap';
import { randomBytes } from 'node:crypto';
import { setImmediate as yieldTurn } from 'node:timers/promises';
import { ManualClock } from '../../support/manual-clock.js';
import { downloadArtifact } from '../../../firmware/ota/download.js';
import { OTA_THROTTLE_SLICE_BYTES } from '../../../firmware/ota/download-throttle.js';
import { TokenBucket } from '../../../firmware/uplink/rate.js';
import { ArtifactServer } from '../../support/artifact-server.js';
import { createTestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/**
 * The download and the backlog share the uplink's one bandwidth cap: the download takes from the bucket it is
 * handed (the pump's, UplinkService.bandwidth) rather than a bucket of its own, so the two together never go
 * over `bytesPerSecMax`, and the backlog's publishes still get through while an update downloads.
 */

const ARTIFACT_BYTES = 1024 * 1024;
const RATE_BYTES_PER_SEC = 128 * 1024;
/** A telemetry message's size as the pump takes it from the bucket. */
const MESSAGE_BYTES = 256;

t.test('download + backlog on one bucket stay under the cap at every take, and both move', async (t) => {
  const ca = await createTestCa();
  const server = await ArtifactServer.start(await ca.issue('localhost', ['localhost', '127.0.0.1']));
  t.teardown(async () => {
    await server.close();
    await ca.dispose();
  });
  const sha256 = server.setArtifact(randomBytes(ARTIFACT_BYTES));
  const clock = new ManualClock();
  const bucket = new TokenBucket(RATE_BYTES_PER_SEC, clock);
  const startMs = clock.monoMs();
  const takes: Array<{ atMs: number; bytes: number; who: 'download' | 'backlog' }> = [];
  const recorder = (who: 'download' | 'backlog') => ({
    take(bytes: number): number {
      const waitMs = bucket.take(bytes);
      if (waitMs === 0) takes.push({ atMs: clock.monoMs() - startMs, bytes, who });
      return waitMs;
    },
  });
  // Time passes only when someone waits; a turn of the event loop lets the other side (and the socket) run.
  const sleep = async (ms: number) => {
    clock.advance(ms);
    await yieldTurn();
  };
  let downloading = true;
  const backlog = (async () => {
    const share = recorder('backlog');
    while (downloading) {
      const waitMs = share.take(MESSAGE_BYTES);
      await (waitMs > 0 ? sleep(waitMs) : yieldTurn());
    }
  })();
  const result = await downloadArtifact({
    artifact: { url: server.url(), sha256, bytes: ARTIFACT_BYTES },
    dir: tempDir(t),
    ca: ca.cert,
    budget: { downloadBytesMax: 16 * ARTIFACT_BYTES, reservedBytes: () => 0 },
    // The download's own cap setting is not what holds it: the shared bucket is.
    bytesPerSecMax: () => 0,
    bandwidth: recorder('download'),
    clock,
    sleep,
  });
  downloading = false;
  await backlog;
  t.equal(result.bytes, ARTIFACT_BYTES);
  const burst = RATE_BYTES_PER_SEC * TokenBucket.BURST_SECS;
  let total = 0;
  let over = 0;
  for (const take of takes) {
    total += take.bytes;
    if (total > (RATE_BYTES_PER_SEC * take.atMs) / 1000 + burst + OTA_THROTTLE_SLICE_BYTES) over += 1;
  }
  t.equal(over, 0, `all ${takes.length} takes together stay under ${RATE_BYTES_PER_SEC} B/s (+ burst and a slice)`);
  const downloaded = takes.filter((x) => x.who === 'download').reduce((n, x) => n + x.bytes, 0);
  const published = takes.filter((x) => x.who === 'backlog').reduce((n, x) => n + x.bytes, 0);
  t.equal(downloaded, ARTIFACT_BYTES, 'every byte of the download was taken from the shared bucket');
  const messages = published / MESSAGE_BYTES;
  t.ok(messages >= 100, `the backlog kept publishing meanwhile (${messages} messages)`);
  t.ok(
    takes.filter((x) => x.who === 'download').every((x) => x.bytes <= OTA_THROTTLE_SLICE_BYTES),
    'the download takes in slices, never a whole socket read at once',
  );
  const elapsedMs = takes.at(-1)!.atMs;
  const floorMs = ((downloaded + published - burst - OTA_THROTTLE_SLICE_BYTES) * 1000) / RATE_BYTES_PER_SEC;
  t.ok(elapsedMs >= floorMs, `the two took ${elapsedMs} ms of fake time together, at least ${Math.round(floorMs)}`);
});
