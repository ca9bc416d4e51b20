import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { loadBoard } from '../../../firmware/board/board.js';
import { optionSpec } from '../../../firmware/config/schema.js';
import { STORAGE_QUOTA_SEGMENTS_MIN } from '../../../firmware/config/storage.js';
import { RingLog } from '../../../firmware/store/log.js';
import { tempDir } from '../../support/tmp.js';

// board.json's storage ranges (the schema table) are the operator's; the store has wider ones of its own
// (tests roll 4 KiB segments). Whatever board.json accepts, the store must open: a range that disagreed
// would pass `outpost board check` and then fail at start.
const BOARDS_DIR = new URL('../../../boards/', import.meta.url).pathname;
const boards = Object.fromEntries(
  readdirSync(BOARDS_DIR)
    .filter((n) => n.endsWith('.json'))
    .map((n) => [n, readFileSync(join(BOARDS_DIR, n), 'utf8')]),
);

const segment = optionSpec('storage.segmentBytes').int!;
const ttl = optionSpec('storage.ttlSecs').int!;
const extremes = [
  { segmentBytes: segment.min, quotaBytes: STORAGE_QUOTA_SEGMENTS_MIN * segment.min, ttlSecs: ttl.min },
  { segmentBytes: segment.max, quotaBytes: STORAGE_QUOTA_SEGMENTS_MIN * segment.max, ttlSecs: ttl.max },
];

for (const storage of extremes) {
  t.test(`board.json's storage extremes open the store: ${JSON.stringify(storage)}`, async (t) => {
    const dir = t.testdir({
      'board.json': JSON.stringify({ board: 'sim', identity: { gatewayId: 'gw' }, storage }),
      boards,
      'sim-data': {},
    });
    const board = await loadBoard(join(dir, 'board.json'), { files: false });
    t.match(board.storage, storage, 'board.json accepts them');
    const log = await RingLog.open({ ...board.storage, dir: tempDir(t) });
    await log.close();
  });
}
