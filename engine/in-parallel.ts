/**
 * Maps `fn` over `items` with at most `limit` calls in flight; the results in
 * the items' order. A failure does not stop the other calls: once all have
 * settled, the first failure is thrown.
 */
export async function inParallel<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  const failures: unknown[] = [];
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const k = next++;
      try {
        out[k] = await fn(items[k]!);
      } catch (err) {
        failures.push(err);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  if (failures.length > 0) throw failures[0];
  return out;
}

/**
 * `Promise.all` that waits for every promise to settle before it throws the
 * first failure: a caller that fails never leaves work of its own still
 * running (and writing) behind it.
 */
export async function settleAll<T extends readonly unknown[]>(promises: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  return valuesOrFirstFailure(await Promise.allSettled(promises)) as unknown as T;
}

/** The values of settled promises, in order; or throws the first failure among them. */
export function valuesOrFirstFailure<T>(settled: readonly PromiseSettledResult<T>[]): T[] {
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) throw failed.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<T>).value);
}
