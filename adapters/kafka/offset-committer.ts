/**
 * Offset commits behind the fetch loop. A consumer's next fetch waits for
 * its batch handler to return; awaiting the OffsetCommit round trip there put
 * that round trip in front of every dispatch that arrived meanwhile. Here the
 * handler hands over the next offset of a partition whose records `handle`
 * resolved, and returns.
 *
 * At most one commit is in flight. Offsets handed over meanwhile wait for it,
 * and a later offset of a partition replaces an earlier one, so under load
 * one OffsetCommit covers many batches. Only offsets of handled records are
 * ever committed, so at-least-once holds. A commit lost to a crash, or one
 * that failed, is only records delivered again, which the claims fence (a
 * later commit of the partition covers it). After a rebalance the waiting
 * offsets are dropped (`clear`), so none is committed in the new generation
 * for a partition another member may own by then; the one commit in flight
 * at that moment may still land, which at worst moves that partition's
 * committed offset back to records handled already: duplicates, never a loss.
 */

/** Commits `{ partition, offset }` pairs of one topic (kafkajs: `commitOffsetsIfNecessary` with explicit offsets). */
export type CommitOffsets = (partitions: { partition: number; offset: string }[]) => Promise<void>;

export interface OffsetCommitter {
  /** The next offset to read in `partition`: every record before it was handled. Commits it soon, with `commit`. */
  add(commit: CommitOffsets, partition: number, offset: string): void;
  /** Resolves once every offset handed over so far was committed, or its commit failed or was dropped. */
  settled(): Promise<void>;
  /** Drops the offsets not sent yet (the consumer rejoined its group). */
  clear(): void;
}

/** `onError` hears of each failed commit (its offsets are not tried again: the next commit of the partition covers them). */
export function offsetCommitter(onError: (error: unknown) => void): OffsetCommitter {
  const pending = new Map<number, string>();
  let commit: CommitOffsets | null = null;
  let inFlight: Promise<void> | null = null;

  const drain = async (): Promise<void> => {
    while (pending.size > 0) {
      const partitions = [...pending].map(([partition, offset]) => ({ partition, offset }));
      pending.clear();
      try {
        await commit!(partitions);
      } catch (error) {
        onError(error);
      }
    }
  };
  const start = (): void => {
    inFlight = drain().finally(() => {
      inFlight = null;
      // Offsets handed over after the last loop of `drain` and before this callback.
      if (pending.size > 0) start();
    });
  };

  return {
    add(fn, partition, offset) {
      commit = fn;
      pending.set(partition, offset);
      if (!inFlight) start();
    },
    async settled() {
      while (inFlight) await inFlight;
    },
    clear() {
      pending.clear();
    },
  };
}
