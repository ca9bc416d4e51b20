import { resolveOptions, type ResolvedOptions } from './options.js';

/** The options a running log accepts from the cloud (see RingLog.applySettings). */
export interface RuntimeSettings {
  ttlSecs?: number;
  quotaBytes?: number;
  quotaPolicy?: ResolvedOptions['quotaPolicy'];
}

function stripUndefinedSettings<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Validates `settings` like the options at open (an INVALID error names the field), then writes them into `opts`. */
export function applyRuntimeSettings(opts: ResolvedOptions, settings: RuntimeSettings): void {
  const next = resolveOptions({ ...opts, ...stripUndefinedSettings(settings) });
  const mutable = opts as { -readonly [K in keyof ResolvedOptions]: ResolvedOptions[K] };
  mutable.ttlSecs = next.ttlSecs;
  mutable.quotaBytes = next.quotaBytes;
  mutable.quotaPolicy = next.quotaPolicy;
}
