import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
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
    artifact: { url: server.url(), sha256, bytes: ARTIFACT_BYTES },
    dir,
    ca: ca.cert,
    budget: { downloadBytesMax: 4 * ARTIFACT_BYTES, reservedBytes: () => 0 },
    bytesPerSecMax: () => 0,
    retryMs: { min: 10, max: 100 },
    ...extra,
  };
}

interface Seen {
  partBytes: number;
  record: string | null;
}

interface CrashState {
  partBytes: number;
  tail: 'real' | 'zeros' | 'garbage';
  record: string | null;
  durable: number;
}

/** The states a cut at `point` may leave: its record or the one before, the part's length and tail. */
function crashStates(point: Seen, records: Array<string | null>): CrashState[] {
  const index = records.indexOf(point.record);
  const states: CrashState[] = [];
  for (const record of new Set([point.record, records[Math.max(0, index - 1)]!])) {
    const durable = record === null ? 0 : (JSON.parse(record) as { durableBytes: number }).durableBytes;
    for (const partBytes of new Set([durable, Math.floor((durable + point.partBytes) / 2), point.partBytes])) {
      for (const tail of ['real', 'zeros', 'garbage'] as const) {
        if (partBytes > durable || tail === 'real') states.push({ partBytes, tail, record, durable });
      }
    }
  }
  return states;
}

/** Lays the state out and downloads again: the artifact, with only what was not synced fetched. */
async function resume(t: Test, { partBytes, tail, record, durable }: CrashState): Promise<void> {
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
  const rest = ARTIFACT_BYTES - durable;
  if (result.fetchedBytes !== rest) t.fail(`${where}: fetched ${result.fetchedBytes}, not the ${rest} unsynced`);
}

t.test('every crash state of a download resumes to the artifact, fetching only what was not synced', async (t) => {
  // One real download, looked at after each chunk: the part's length and the record as they are on disk.
  const dir = tempDir(t);
  const seen: Seen[] = [];
  const look = () => {
    const record = existsSync(join(dir, RECORD_FILE)) ? readFileSync(join(dir, RECORD_FILE), 'utf8') : null;
    seen.push({ partBytes: statSync(join(dir, PART_FILE_NAME)).size, record });
  };
  await downloadArtifact(options(dir, { onProgress: look }));
  // The points worth cutting at: the last look before each new record (the most unsynced bytes), and the first
  // after it (the previous record's rename may not have reached the disk).
  const points = seen.filter((s, i) => seen[i + 1]?.record !== s.record || seen[i - 1]?.record !== s.record);
  const records = [null, ...new Set(seen.map((s) => s.record))];
  t.ok(records.length >= 4, `${records.length - 1} records written over ${seen.length} chunks`);

  const states = points.flatMap((point) => crashStates(point, records));
  for (const state of states) await resume(t, state);
  t.ok(states.length >= 30, `${states.length} crash states resumed, each fetching only the unsynced rest`);
});
