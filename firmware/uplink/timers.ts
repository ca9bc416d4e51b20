/** Time bounds the pump puts on work it does not control (a connect, a hook, a goodbye). */

/** True when `work` settled (either way) within `ms`; the timer never outlives the answer. */
export async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), Math.max(0, ms))));
  try {
    return await Promise.race([
      work.then(
        () => true,
        () => true,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * `work`, or the error `onTimeout` makes once `timeoutMs` passed first. `afterTimeout` runs after that error
 * settled the race: a teardown there cannot make `work` reject first and hide the timeout.
 */
export async function deadline(
  work: Promise<void>,
  timeoutMs: number,
  onTimeout: () => Error,
  afterTimeout?: () => void,
): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(onTimeout());
      afterTimeout?.();
    }, timeoutMs);
  });
  try {
    await Promise.race([work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
