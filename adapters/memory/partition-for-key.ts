/**
 * Key → partition for the in-process log: FNV-1a (32 bit) over the key's UTF-8
 * bytes, modulo the partition count. Stable across processes and runs, so a
 * job id always lands on the same partition (that is what keeps per-key order).
 * It is not Kafka's murmur2: nothing may rely on both logs agreeing.
 */
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** The partition (0 ≤ p < `partitions`) that `key` maps to. */
export function partitionForKey(key: string, partitions: number): number {
  let hash = FNV_OFFSET;
  for (const byte of Buffer.from(key, 'utf8')) {
    hash ^= byte;
    hash = Math.imul(hash, FNV_PRIME) >>> 0;
  }
  return hash % partitions;
}
