/** Typed errors for the outside world; plain `assert` is kept for programmer errors. */
export type StoreErrorCode =
  | 'FULL' // quota reached under reject-new, or ENOSPC from the file system
  | 'IO' // the file system failed (EIO, EROFS, fsync error): the data is not durable
  | 'CLOSED' // the log was closed
  | 'INVALID' // bad option or argument (names the option)
  | 'LOCKED' // another live process owns the data directory
  | 'TOO_LARGE'; // a record over recordBytesMax

export class StoreError extends Error {
  readonly code: StoreErrorCode;

  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StoreError';
    this.code = code;
  }
}

/** Maps an fs error to the store's vocabulary: ENOSPC and EDQUOT mean FULL, everything else IO. */
export function fromFsError(err: unknown, what: string): StoreError {
  if (err instanceof StoreError) return err;
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  const kind: StoreErrorCode = code === 'ENOSPC' || code === 'EDQUOT' ? 'FULL' : 'IO';
  return new StoreError(kind, `${what}: ${code ?? String(err)}`, { cause: err });
}
