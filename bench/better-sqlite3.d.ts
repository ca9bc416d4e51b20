// better-sqlite3 ships no type declarations and @types/better-sqlite3 is not a dependency; this covers
// only the calls the store benchmark makes.
declare module 'better-sqlite3' {
  interface RunResult {
    changes: number;
    lastInsertRowid: number | bigint;
  }
  interface Statement<Row = unknown> {
    run(...params: unknown[]): RunResult;
    all(...params: unknown[]): Row[];
  }
  class Database {
    constructor(filename: string, options?: { timeout?: number });
    pragma(source: string, options?: { simple?: boolean }): unknown;
    exec(source: string): this;
    prepare<Row = unknown>(source: string): Statement<Row>;
    transaction<Args extends unknown[]>(fn: (...args: Args) => void): (...args: Args) => void;
    close(): this;
  }
  export default Database;
}
