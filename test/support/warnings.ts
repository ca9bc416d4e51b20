/** Node process warnings (`process.emitWarning`) as tests see them. */

/** The warnings `fn` emits, after the next tick they are delivered on. */
export async function warningsOf(fn: () => unknown): Promise<Error[]> {
  const seen: Error[] = [];
  const stop = collectWarnings(seen);
  try {
    fn();
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    stop();
  }
  return seen;
}

/** Pushes every warning into `into` until the returned function is called (or the test's teardown). */
export function collectWarnings(into: Error[], t?: { teardown(fn: () => void): void }): () => void {
  const listener = (warning: Error) => void into.push(warning);
  process.on('warning', listener);
  const stop = () => void process.off('warning', listener);
  t?.teardown(stop);
  return stop;
}
