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
