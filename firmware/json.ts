/**
 * True for a JSON object: not null, not an array. Board files, scope documents, twins, saved settings and
 * the page's posts must each be one at their top, and a check that forgot arrays would take `[]` for `{}`.
 */
export function isJsonObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
