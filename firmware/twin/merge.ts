import { isJsonObject } from '../json.js';

/** JSON merge patches (RFC 7386) as IoT Hub applies them to twins: null deletes, objects merge, `$` keys are metadata. */

export type Props = Record<string, unknown>;

/** Nesting IoT Hub allows in twin properties, levels. */
export const TWIN_DEPTH_MAX = 10;
/** IoT Hub's size limit for each of the desired and reported sections, bytes. */
export const TWIN_SECTION_BYTES_MAX = 32 * 1024;
/**
 * Largest pending reported patch per twin, bytes. It goes to IoT Hub as one patch, which IoT Hub refuses past
 * the section size; and without a bound, deletes of keys set and removed while offline pile up in it.
 */
export const TWIN_PENDING_BYTES_MAX = TWIN_SECTION_BYTES_MAX;

/** Applies `patch` to `target` in place; null removes the key. */
export function applyPatch(target: Props, patch: Props): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) delete target[key];
    else if (isJsonObject(value)) {
      const child = isJsonObject(target[key]) ? (target[key] as Props) : {};
      applyPatch(child, value);
      target[key] = child;
    } else target[key] = value;
  }
}

/**
 * `patch` without the nulls that delete nothing: keys absent from `current` (the local reported section, which
 * holds everything this gateway ever reported that was not deleted since). A child sending thousands of nulls
 * for keys that never existed otherwise grows the pending patch, and the disk, while changing nothing.
 */
export function withoutIdleDeletes(patch: Props, current: Props): Props {
  const out: Props = {};
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (value === null) {
      if (key in current) out[key] = null;
    } else if (isJsonObject(value)) {
      const inner = withoutIdleDeletes(value, isJsonObject(current[key]) ? (current[key] as Props) : {});
      // An object left empty by the pruning still sets the key (merge-patch semantics) if it did not exist.
      if (Object.keys(inner).length > 0 || !isJsonObject(current[key])) out[key] = inner;
    } else out[key] = value;
  }
  return out;
}

/** Folds a later patch into an earlier pending one, keeping nulls: the cloud must still delete those keys. */
export function foldPatch(pending: Props, patch: Props): void {
  for (const [key, value] of Object.entries(patch)) {
    if (key.startsWith('$')) continue;
    if (isJsonObject(value) && isJsonObject(pending[key])) foldPatch(pending[key] as Props, value);
    else pending[key] = isJsonObject(value) ? structuredClone(value) : value;
  }
}

/** The patch that turns `from` into `to` (both without metadata): changed keys, and null for removed ones. */
export function diff(from: Props, to: Props): Props {
  const out: Props = {};
  for (const key of Object.keys(from)) if (!key.startsWith('$') && !(key in to)) out[key] = null;
  for (const [key, value] of Object.entries(to)) {
    if (key.startsWith('$')) continue;
    const before = from[key];
    if (isJsonObject(value) && isJsonObject(before)) {
      const inner = diff(before, value);
      if (Object.keys(inner).length > 0) out[key] = inner;
    } else if (JSON.stringify(before) !== JSON.stringify(value)) out[key] = value;
  }
  return out;
}

/** Why a patch from a child is refused, or null; bounds depth and size as IoT Hub does. */
export function patchProblem(patch: unknown): string | null {
  if (!isJsonObject(patch)) return 'a twin patch must be a JSON object';
  const depthOk = (v: unknown, depth: number): boolean =>
    !isJsonObject(v) || (depth <= TWIN_DEPTH_MAX && Object.values(v).every((c) => depthOk(c, depth + 1)));
  if (!depthOk(patch, 1)) return `twin patch nested deeper than ${TWIN_DEPTH_MAX} levels`;
  return null;
}

export function withoutMetadata(props: Props): Props {
  return Object.fromEntries(Object.entries(props).filter(([key]) => !key.startsWith('$')));
}
