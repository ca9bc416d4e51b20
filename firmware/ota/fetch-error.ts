/**
 * Why fetching an update stopped. TRANSIENT: the link or the server failed and a later attempt resumes where
 * this one stopped. REFUSED: this update will not be taken (bad hash, over the disk budget, a 403 from an
 * expired SAS URL); the cloud must send another manifest. ABORTED: the gateway is stopping.
 * `reason` is short and stable (`sha256`, `disk-budget`, `http-403`), for counters and the reported state.
 */
export type OtaFetchErrorCode = 'TRANSIENT' | 'REFUSED' | 'ABORTED';

export class OtaFetchError extends Error {
  constructor(
    readonly code: OtaFetchErrorCode,
    readonly reason: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'OtaFetchError';
  }
}
