import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import {
  BacklogHistory,
  HISTORY_DAY_SAMPLES_MAX,
  HISTORY_FILE_BYTES,
  HISTORY_SAMPLES_MAX,
  HistoryFile,
  loadHistoryFile,
} from '../../../firmware/page/history.js';
import type { StatusReport } from '../../../firmware/ops/report.js';
import { tempDir } from '../../support/tmp.js';

/** The chart's samples: seconds for the last minutes, minutes for the day, and the day kept across a restart. */

const MINUTE_MS = 60_000;
const T0 = Date.UTC(2026, 11, 1, 12, 0, 0);

/** Only the fields the history reads. */
function report(records: number): StatusReport {
  return { lanes: [{ records, bytes: records * 10 }], drain: { ratePerSec: 5 } } as unknown as StatusReport;
}

t.test('seconds for ten minutes, one sample a minute before that, one series in time order', async (t) => {
  const history = new BacklogHistory();
  const secs = 3 * 60 * 60;
  for (let s = 0; s < secs; s += 1) history.add(report(s), T0 + s * 1_000);
  const list = history.list();
  const fine = list.filter((x) => x.atWallMs >= T0 + (secs - HISTORY_SAMPLES_MAX) * 1_000);
  t.equal(fine.length, HISTORY_SAMPLES_MAX, 'the last ten minutes at one a second');
  t.equal(list.length - fine.length, 3 * 60 - 10, 'the three hours before, one a minute');
  t.ok(
    list.every((x, i) => i === 0 || x.atWallMs > list[i - 1]!.atWallMs),
    'in time order, no repeats',
  );
  t.equal(list.at(-1)!.records, secs - 1);
});

t.test('the day survives a restart through the file; older than a day and future samples are left out', async (t) => {
  const path = join(tempDir(t), 'page-history.bin');
  const file = new HistoryFile(path);
  const before = new BacklogHistory([], file);
  // 26 hours at one sample a minute: the ring of 1,440 slots has wrapped.
  for (let m = 0; m < 26 * 60; m += 1) before.add(report(m), T0 + m * MINUTE_MS);
  await before.close();
  t.equal(statSync(path).size, HISTORY_FILE_BYTES, 'the file never grows past its slots');
  const now = T0 + (26 * 60 - 1) * MINUTE_MS + 30_000;
  const loaded = await loadHistoryFile(path, now);
  t.equal(loaded.problem, null);
  t.equal(loaded.samples.length, HISTORY_DAY_SAMPLES_MAX, 'the last 24 hours');
  t.equal(loaded.samples[0]!.records, 2 * 60, 'the two oldest hours were overwritten');
  t.equal(loaded.samples.at(-1)!.records, 26 * 60 - 1);
  const after = new BacklogHistory(loaded.samples);
  after.add(report(9_999), now + 1_000);
  t.equal(after.list().length, HISTORY_DAY_SAMPLES_MAX + 1, 'the restart carries on from the stored day');

  const hoursLater = await loadHistoryFile(path, now + 12 * 60 * MINUTE_MS);
  t.equal(hoursLater.samples.length, 12 * 60, 'samples older than a day are not shown');
  const clockSetBack = await loadHistoryFile(path, now - 60 * MINUTE_MS);
  t.ok(
    clockSetBack.samples.every((s) => s.atWallMs <= now - 59 * MINUTE_MS),
    'nothing from the future',
  );
});

t.test('a clock set back drops the samples stamped ahead of it, so the series stays in order', async (t) => {
  const history = new BacklogHistory();
  for (let m = 0; m < 30; m += 1) history.add(report(m), T0 + m * MINUTE_MS);
  history.add(report(100), T0 + 10 * MINUTE_MS + 5_000);
  const list = history.list();
  t.ok(
    list.every((x, i) => i === 0 || x.atWallMs > list[i - 1]!.atWallMs),
    'in time order',
  );
  t.equal(list.at(-1)!.records, 100);
});

t.test('a foreign, truncated or unreadable file is reported with its name and replaced, never fatal', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'page-history.bin');
  writeFileSync(path, 'not a history file\n');
  const loaded = await loadHistoryFile(path, T0);
  t.same(loaded.samples, []);
  t.match(loaded.problem, new RegExp(`^${path}: not a page history file \\(19 bytes\\)`));
  const file = new HistoryFile(path);
  const history = new BacklogHistory(loaded.samples, file);
  history.add(report(7), T0);
  await history.close();
  t.equal(statSync(path).size, HISTORY_FILE_BYTES, 'rewritten at its full size');
  t.equal((await loadHistoryFile(path, T0)).samples[0]!.records, 7);

  const garbage = Buffer.from(readFileSync(path));
  garbage.fill(0xff, 8);
  writeFileSync(path, garbage);
  t.same((await loadHistoryFile(path, T0)).samples, [], 'slots that do not decode are skipped');

  const unwritable = new HistoryFile(join(dir, 'no-such-dir', 'page-history.bin'));
  const lossy = new BacklogHistory([], unwritable);
  lossy.add(report(1), T0);
  await lossy.close();
  t.equal(lossy.fileFailures(), 1, 'a failed write is counted');
  t.match(unwritable.lastError, /no-such-dir\/page-history\.bin: ENOENT/);
  t.equal(lossy.list().length, 1, 'the chart keeps its samples in memory');
});
