import { UplinkError } from '../uplink/types.js';

/** Time bounds on edge mode's twin requests on children's connections (edge-sync.ts). */

/**
 * A twin operation on a child's connection unanswered past this is given up, ms: the SDK waits minutes for
 * a twin response and a sync holding one of EDGE_TWIN_SYNCS_MAX slots that long would stall the others.
 */
export const EDGE_TWIN_REQUEST_TIMEOUT_MS = 30_000;
/**
 * A child's own twin GET or PATCH waits this long for IoT Hub before the cache answers it, ms: less than
 * the device SDKs' twin request timeouts, so the child gets an answer (the PATCH still goes up later).
 */
export const EDGE_TWIN_PASSTHROUGH_MS = 5_000;

/** A twin request with EDGE_TWIN_REQUEST_TIMEOUT_MS as its bound. */
export function bounded<T>(work: Promise<T>, what: string): Promise<T> {
  return timed(work, EDGE_TWIN_REQUEST_TIMEOUT_MS).then((value) => {
    const why = `${what}: no answer from IoT Hub in ${EDGE_TWIN_REQUEST_TIMEOUT_MS} ms`;
    if (value === TIMED_OUT) throw new UplinkError('TIMEOUT', why);
    return value as T;
  });
}

export const TIMED_OUT: unique symbol = Symbol('timed out');

/** `work`'s value, or TIMED_OUT once `ms` passed first; the timer never outlives the answer. */
export async function timed<T>(work: Promise<T>, ms: number): Promise<T | typeof TIMED_OUT> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof TIMED_OUT>((resolve) => (timer = setTimeout(() => resolve(TIMED_OUT), ms)));
  try {
    return await Promise.race([work, late]);
  } finally {
    clearTimeout(timer);
  }
}
