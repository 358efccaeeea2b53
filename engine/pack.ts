/**
 * Consecutive groups of `items`, in order, each within `maxItems` and
 * `maxSize` (an item alone over the size limit gets its own group): the one
 * greedy packing behind multi-row INSERTs, multi-statement sends and the
 * Kafka log's produce requests.
 */
export function pack<T>(items: readonly T[], sizeOf: (item: T) => number, maxItems: number, maxSize: number): T[][] {
  const groups: T[][] = [];
  let current: T[] = [];
  let size = 0;
  for (const item of items) {
    const itemSize = sizeOf(item);
    if (current.length > 0 && (current.length >= maxItems || size + itemSize > maxSize)) {
      groups.push(current);
      current = [];
      size = 0;
    }
    current.push(item);
    size += itemSize;
  }
  if (current.length > 0) groups.push(current);
  return groups;
}
