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
 * ever committed, so at-least-once holds. A commit lost to a crash is only
 * records delivered again, which the claims fence. A commit that failed (the
 * coordinator away for a moment) is tried again after a pause (500 ms,
 * doubling up to 30 s while commits fail), or with the next commit, whichever
 * comes first, and an offset of its partition handed over meanwhile replaces
 * it: a quiet partition's committed offset does not stay behind its handled
 * records, which the timers would read as dispatches waiting unread there
 * (`EventLog.unreadBefore`). After a rebalance the waiting offsets, and those
 * whose commit failed, are dropped (`clear`), so none is committed in the new
 * generation for a partition another member may own by then; the one commit
 * in flight at that moment may still land, which at worst moves that
 * partition's committed offset back to records handled already: duplicates,
 * never a loss.
 */
import { ErrorBackoff } from '../../engine/error-backoff.js';

/** The first pause before a failed commit is tried again, and the longest while commits go on failing. */
export const COMMIT_RETRY_MS = 500;
export const MAX_COMMIT_RETRY_MS = 30_000;

/** Commits `{ partition, offset }` pairs of one topic (kafkajs: `commitOffsetsIfNecessary` with explicit offsets). */
export type CommitOffsets = (partitions: { partition: number; offset: string }[]) => Promise<void>;

export interface OffsetCommitter {
  /** The next offset to read in `partition`: every record before it was handled. Commits it soon, with `commit`. */
  add(commit: CommitOffsets, partition: number, offset: string): void;
  /**
   * Resolves once every offset handed over so far was committed, or its
   * commit failed or was dropped; an offset whose commit failed before is
   * tried once more now (a stop's last chance).
   */
  settled(): Promise<void>;
  /** Drops the offsets not committed yet, those whose commit failed too (the consumer rejoined its group, or stopped). */
  clear(): void;
}

export interface OffsetCommitterOptions {
  /** The first pause before a failed commit is tried again (doubling up to {@link MAX_COMMIT_RETRY_MS}). @defaultValue COMMIT_RETRY_MS */
  retryDelayMs?: number;
}

/** `onError` hears of each failed commit (its offsets are tried again: see the module note). */
export function offsetCommitter(onError: (error: unknown) => void, options: OffsetCommitterOptions = {}): OffsetCommitter {
  const retryDelayMs = options.retryDelayMs ?? COMMIT_RETRY_MS;
  const backoff = new ErrorBackoff(retryDelayMs, Math.max(retryDelayMs, MAX_COMMIT_RETRY_MS));
  const pending = new Map<number, string>();
  /** Offsets whose commit failed, to try again (unless a later offset of the partition comes first). */
  const failed = new Map<number, string>();
  let commit: CommitOffsets | null = null;
  let inFlight: Promise<void> | null = null;
  let retryTimer: NodeJS.Timeout | undefined;
  /** Moves on at each `clear`: a commit that fails across one is not tried again. */
  let generation = 0;

  /** The failed offsets join the next commit, where no later offset of their partition waits. */
  const takeFailed = (): void => {
    for (const [partition, offset] of failed) if (!pending.has(partition)) pending.set(partition, offset);
    failed.clear();
  };
  const drain = async (): Promise<void> => {
    while (pending.size > 0 || failed.size > 0) {
      takeFailed();
      const partitions = [...pending].map(([partition, offset]) => ({ partition, offset }));
      pending.clear();
      const at = generation;
      try {
        await commit!(partitions);
        backoff.succeeded();
      } catch (error) {
        onError(error);
        if (at !== generation) continue;
        for (const { partition, offset } of partitions) failed.set(partition, offset);
        retryLater();
        // Tried again after the pause, or with the next offset handed over: not at once.
        if (pending.size === 0) return;
      }
    }
  };
  const retryLater = (): void => {
    if (retryTimer) return;
    // Not held against the process: a stop clears it.
    retryTimer = setTimeout(() => {
      retryTimer = undefined;
      if (failed.size > 0 && !inFlight) start();
    }, backoff.failed()).unref();
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
      failed.delete(partition);
      if (!inFlight) start();
    },
    async settled() {
      if (failed.size > 0 && !inFlight) {
        clearTimeout(retryTimer);
        retryTimer = undefined;
        start();
      }
      while (inFlight) await inFlight;
    },
    clear() {
      generation++;
      pending.clear();
      failed.clear();
      clearTimeout(retryTimer);
      retryTimer = undefined;
    },
  };
}
