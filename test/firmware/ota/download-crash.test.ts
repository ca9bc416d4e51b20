import t from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { downloadArtifact, OTA_SYNC_BYTES, type DownloadOptions } from '../../../firmware/ota/download.js';
import { PART_FILE_NAME } from '../../../firmware/ota/download-file.js';
import { ArtifactServer } from '../../support/artifact-server.js';
import { createTestCa, type TestCa } from '../../support/tls-certs.js';
import { tempDir } from '../../support/tmp.js';

/**
 * Power cuts during a download, beyond a killed process: from the part file and its record as a real download
 * leaves them, every state a file system may be left in by a cut — the record's rename not yet durable (the
 * previous record, or none before the first sync), the part file longer than its synced length with a tail of
 * the real bytes, zeros or garbage (data not yet written back) — each resumed by a fresh download. Each must
 * end with the artifact's bytes, having fetched exactly what was not synced: resumption, never garbage
 * accepted and never a refusal.
 */

const ARTIFACT_BYTES = 3 * OTA_SYNC_BYTES + 123_457;
const RECORD_FILE = 'artifact.json';

let ca: TestCa;
let server: ArtifactServer;
const artifact = randomBytes(ARTIFACT_BYTES);
let sha256 = '';

t.before(async () => {
  ca = await createTestCa();
  server = await ArtifactServer.start(await ca.issue('localhost', ['localhost', '127.0.0.1']));
  sha256 = server.setArtifact(artifact);
});
t.teardown(async () => {
  await server.close();
  await ca.dispose();
});

function options(dir: string, extra: Partial<DownloadOptions> = {}): DownloadOptions {
  return {
    artifact: { url: server.url(), sha256, bytes: ARTIFACT_BYTES }, dir, ca: ca.cert,
    budget: { downloadBytesMax: 4 * ARTIFACT_BYTES, reservedBytes: () => 0 },
    maxBytesPerSec: () => 0, retryMs: { min: 10, max: 100 }, ...extra,
  };
}

interface Seen {
  partBytes: number;
  record: string | null;
}

t.test('every crash state of a download resumes to the artifact, fetching only what was not synced', async (t) => {
  // One real download, looked at after each chunk: the part's length and the record as they are on disk.
  const dir = tempDir(t);
  const seen: Seen[] = [];
  const look = () => {
    const record = (() => {
      try {
        return readFileSync(join(dir, RECORD_FILE), 'utf8');
      } catch {
        return null;
      }
    })();
    seen.push({ partBytes: statSync(join(dir, PART_FILE_NAME)).size, record });
  };
  await downloadArtifact(options(dir, { onProgress: look }));
  // The points worth cutting at: the last look before each new record (the most unsynced bytes), and the first
  // after it (the previous record's rename may not have reached the disk).
  const points = seen.filter((s, i) => seen[i + 1]?.record !== s.record || seen[i - 1]?.record !== s.record);
  const records = [null, ...new Set(seen.map((s) => s.record))];
  t.ok(records.length >= 4, `${records.length - 1} records written over ${seen.length} chunks`);

  let states = 0;
  for (const point of points) {
    // The record found after the cut: the one on disk, or the one before it (rename not durable).
    const index = records.indexOf(point.record);
    for (const record of new Set([point.record, records[Math.max(0, index - 1)]!])) {
      const durable = record === null ? 0 : (JSON.parse(record) as { durableBytes: number }).durableBytes;
      for (const partBytes of new Set([durable, Math.floor((durable + point.partBytes) / 2), point.partBytes])) {
        for (const tail of ['real', 'zeros', 'garbage'] as const) {
          if (partBytes === durable && tail !== 'real') continue;
          states += 1;
          const cut = tempDir(t);
          mkdirSync(cut, { recursive: true });
          const bytes = Buffer.from(artifact.subarray(0, partBytes));
          if (tail === 'zeros') bytes.fill(0, durable);
          if (tail === 'garbage') randomBytes(partBytes - durable).copy(bytes, durable);
          writeFileSync(join(cut, PART_FILE_NAME), bytes);
          if (record !== null) writeFileSync(join(cut, RECORD_FILE), record);
          const where = `part ${partBytes} (${tail} past ${durable}), record ${record === null ? 'none' : durable}`;
          const result = await downloadArtifact(options(cut));
          const digest = createHash('sha256').update(readFileSync(result.path)).digest('hex');
          if (digest !== sha256) t.fail(`${where}: the resumed artifact is not the one served`);
          if (result.fetchedBytes !== ARTIFACT_BYTES - durable) {
            t.fail(`${where}: fetched ${result.fetchedBytes}, not the ${ARTIFACT_BYTES - durable} past the synced part`);
          }
        }
      }
    }
  }
  t.ok(states >= 30, `${states} crash states resumed, each to the artifact with only the unsynced rest fetched`);
});
