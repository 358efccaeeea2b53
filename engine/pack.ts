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

/**
 * How many of the first of `sizes`, in order, fit together in `maxSize`: at
 * least one when there is any (an item alone over the limit still comes), as
 * the first group of `pack` holds. A page bounded in bytes takes that many
 * (the stream's reads, engine/event-tail.ts; a workflow's history pages,
 * engine/workflows.ts; the list pages, adapters/sql/pages.ts).
 */
export function fitting(sizes: readonly number[], maxSize: number): number {
  let taken = 0;
  for (let size = 0; taken < sizes.length; taken++) {
    size += sizes[taken]!;
    if (taken > 0 && size > maxSize) break;
  }
  return taken;
}
