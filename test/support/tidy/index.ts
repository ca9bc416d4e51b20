import { dependencyViolations } from './deps.js';
import { importViolations } from './imports.js';
import { layoutViolations } from './layout.js';
import { limitViolations } from './limits.js';
import { sizeViolations } from './sizes.js';
import { loadCheckout, type Violation } from './source.js';

export { compare, countViolations, lowerBaseline, readBaseline } from './ratchet.js';
export type { Violation } from './source.js';

/** Every house rule over one checkout: sizes, imports, dependency groups, commented limits. */
export function tidyViolations(root: string): Violation[] {
  const checkout = loadCheckout(root);
  return [
    ...sizeViolations(checkout.files),
    ...importViolations(checkout),
    ...dependencyViolations(checkout),
    ...limitViolations(checkout.files),
    ...layoutViolations(root, checkout.files),
  ];
}
