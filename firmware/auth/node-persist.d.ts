/** The part of node-persist v4 outpost uses; the package ships no types. */
declare module 'node-persist' {
  interface InitOptions {
    dir: string;
    /** false: every setItem writes at once instead of batching on a timer. */
    writeQueue?: boolean;
    /** false: no background timer scanning for expired keys. */
    expiredInterval?: number | false;
    /** true: a file that does not parse is skipped instead of failing every read. */
    forgiveParseErrors?: boolean;
  }
  interface LocalStorage {
    init(options?: InitOptions): Promise<unknown>;
    getItem(key: string): Promise<unknown>;
    setItem(key: string, value: unknown): Promise<unknown>;
    removeItem(key: string): Promise<unknown>;
    keys(): Promise<string[]>;
    stopWriteQueueInterval(): void;
    stopExpiredKeysInterval(): void;
  }
  const nodePersist: { create(options: InitOptions): LocalStorage };
  export default nodePersist;
}
