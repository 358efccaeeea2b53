/**
 * Which partitions of a topic a consumer group has not read up to a time,
 * from three admin answers (pure: no I/O). Kafka keeps no "oldest unread
 * message" per group, but it maps a time to an offset: the first message
 * published after `before` is at `firstAfter`, so the group has unread
 * messages published by then exactly when its position is below that.
 * A group that committed nothing on the topic tells nothing: it may be
 * another group than the one that will read it (none ever did).
 */

/** Per partition, the oldest offset the log still holds (`fetchTopicOffsets`'s `low`). */
export interface PartitionStart {
  partition: number;
  low?: string;
}

/** Per partition, the first offset whose message was published after the time asked (`fetchTopicOffsetsByTimestamp`): the end of the log when none was. */
export interface PartitionOffset {
  partition: number;
  offset?: string;
}

/**
 * The partitions where the group's position, its committed offset (the
 * oldest offset still held when it committed nothing there, or committed
 * below what retention deleted: where the group goes on from, as a worker's
 * group starts from the earliest), is below `firstAfter`. None when the group
 * committed on no partition. A partition whose offsets the broker did not
 * give as numbers is left out.
 */
export function unreadPartitions(
  starts: readonly PartitionStart[],
  firstAfter: readonly PartitionOffset[],
  committed: readonly { partitions: readonly PartitionOffset[] }[],
): Set<number> {
  const committedAt = new Map<number, number>();
  for (const t of committed) for (const p of t.partitions) committedAt.set(p.partition, Number(p.offset));
  const unread = new Set<number>();
  if (![...committedAt.values()].some((at) => at >= 0)) return unread;
  const after = new Map(firstAfter.map((p) => [p.partition, Number(p.offset)]));
  for (const { partition, low } of starts) {
    const start = Number(low);
    const at = committedAt.get(partition);
    const position = at !== undefined && at >= 0 ? Math.max(at, start) : start;
    const end = after.get(partition);
    if (Number.isFinite(position) && end !== undefined && Number.isFinite(end) && position < end) unread.add(partition);
  }
  return unread;
}
