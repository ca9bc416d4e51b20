// The two peers the ring log is measured against, each running the same workload as outpost.
// Type-only imports: each peer's native addon is loaded inside its own function, so the outpost child
// does not carry SQLite's and LevelDB's code in its RSS.
import type Database from 'better-sqlite3';
import type { ClassicLevel } from 'classic-level';
import { join } from 'node:path';
import {
  APPEND_BATCH_CALLS_IN_FLIGHT,
  BATCH_RECORDS,
  TTL_SECS,
  body,
  expectNext,
  measureLife,
  type EngineResult,
} from './store-workload.js';

/** Bytes before the body in a LevelDB value: enqueue ms and ttl seconds, like SQLite's ts/ttl columns. */
const LEVEL_VALUE_HEADER_BYTES = 16;
/** LevelDB keys: the record id as a big-endian u64, so key order is id order. */
const LEVEL_KEY_BYTES = 8;

interface Row {
  id: number;
  ts: number;
  ttl: number;
  payload: Buffer;
}

/** SQLite's synchronous pragma under WAL: NORMAL syncs the WAL only at checkpoints, FULL at every commit. */
export type SqliteSync = 'NORMAL' | 'FULL';

/**
 * SQLite as queues on gateways usually use it: WAL, one transaction per 500 inserts. With
 * synchronous=NORMAL (the usual setting) a commit is not fsynced, so a power cut loses the last commits:
 * not durable per commit, unlike outpost's acknowledged appends. synchronous=FULL fsyncs the WAL at each
 * commit: the durable-vs-durable comparison. Drain: ordered select of unexpired rows, then delete
 * everything acknowledged.
 */
export async function sqliteLife(dir: string, records: number, sync: SqliteSync): Promise<EngineResult> {
  let db!: Database;
  return measureLife(records, {
    async open() {
      const { default: SqliteDatabase } = await import('better-sqlite3');
      db = new SqliteDatabase(join(dir, 'queue.db'));
      db.pragma('journal_mode = WAL');
      db.pragma(`synchronous = ${sync}`);
      db.exec(
        'CREATE TABLE queue (id INTEGER PRIMARY KEY, ts INTEGER NOT NULL, ttl INTEGER NOT NULL, payload BLOB NOT NULL)',
      );
    },
    async append() {
      const insert = db.prepare('INSERT INTO queue (id, ts, ttl, payload) VALUES (?, ?, ?, ?)');
      const insertRange = db.transaction((from: number, to: number) => {
        for (let i = from; i < to; i++) insert.run(i + 1, Date.now(), TTL_SECS, body(i));
      });
      for (let i = 0; i < records; i += BATCH_RECORDS) insertRange(i, Math.min(records, i + BATCH_RECORDS));
    },
    async drain() {
      const select = db.prepare<Row>(
        'SELECT id, ts, ttl, payload FROM queue WHERE id > ? AND (ttl = 0 OR ts + ttl * 1000 > ?) ORDER BY id LIMIT ?',
      );
      const remove = db.prepare('DELETE FROM queue WHERE id <= ?');
      let next = 1;
      let lastId = 0;
      for (;;) {
        const rows = select.all(lastId, Date.now(), BATCH_RECORDS);
        if (rows.length === 0) break;
        for (const row of rows) next = expectNext(next, row.id);
        lastId = rows[rows.length - 1]!.id;
        remove.run(lastId);
      }
      return next - 1;
    },
    async retire() {
      // close() checkpoints the WAL into the database file and removes it: the end of the data's life.
      db.close();
    },
  });
}

/**
 * LevelDB through classic-level: batches of 500 puts written with sync: true (one fsync of its log per
 * write group), APPEND_BATCH_CALLS_IN_FLIGHT of them in flight like outpost's appendBatch calls, as
 * several producers needing durable acknowledgement would. Drain: an ordered iterator from the last
 * acknowledged key, then one batch deleting what it returned.
 */
export async function levelLife(dir: string, records: number): Promise<EngineResult> {
  let db!: ClassicLevel<Buffer, Buffer>;
  return measureLife(records, {
    async open() {
      const { ClassicLevel: Level } = await import('classic-level');
      db = new Level<Buffer, Buffer>(join(dir, 'queue'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
      await db.open();
    },
    async append() {
      const window: Array<Promise<void> | undefined> = new Array(APPEND_BATCH_CALLS_IN_FLIGHT);
      let call = 0;
      for (let i = 0; i < records; i += BATCH_RECORDS, call++) {
        const slot = call % APPEND_BATCH_CALLS_IN_FLIGHT;
        if (window[slot]) await window[slot];
        const ops: Array<{ type: 'put'; key: Buffer; value: Buffer }> = [];
        for (let j = i; j < Math.min(records, i + BATCH_RECORDS); j++) {
          const value = Buffer.allocUnsafe(LEVEL_VALUE_HEADER_BYTES + body(j).length);
          value.writeDoubleLE(Date.now(), 0);
          value.writeDoubleLE(TTL_SECS, 8);
          body(j).copy(value, LEVEL_VALUE_HEADER_BYTES);
          ops.push({ type: 'put', key: levelKey(j + 1), value });
        }
        window[slot] = db.batch(ops, { sync: true });
      }
      await Promise.all(window);
    },
    async drain() {
      let next = 1;
      let after: Buffer | null = null;
      for (;;) {
        const range: { limit: number; gt?: Buffer } = after
          ? { limit: BATCH_RECORDS, gt: after }
          : { limit: BATCH_RECORDS };
        const entries = await db.iterator(range).all();
        if (entries.length === 0) break;
        const now = Date.now();
        for (const [key, value] of entries) {
          next = expectNext(next, Number(key.readBigUInt64BE(0)));
          const ttlSecs = value.readDoubleLE(8);
          if (ttlSecs !== 0 && value.readDoubleLE(0) + ttlSecs * 1000 <= now)
            throw new Error('a record expired mid-run');
        }
        after = entries[entries.length - 1]![0];
        await db.batch(entries.map(([key]) => ({ type: 'del' as const, key })));
      }
      return next - 1;
    },
    async retire() {
      await db.close();
    },
  });
}

function levelKey(id: number): Buffer {
  const key = Buffer.allocUnsafe(LEVEL_KEY_BYTES);
  key.writeBigUInt64BE(BigInt(id), 0);
  return key;
}
