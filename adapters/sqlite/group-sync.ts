/**
 * Group commit for the embedded store. SQLite runs with `synchronous = NORMAL`:
 * a COMMIT writes its frames to the write-ahead log and returns without
 * waiting for the disk. The store then holds every answer (a write's result,
 * a row read, an outbox row handed to the relay's publish) until one sync of
 * the log, started after everything that answer could have seen was
 * committed, has finished. Operations that wait at the same time share one
 * sync, and it runs on libuv's thread pool, so the event loop goes on with
 * other work meanwhile. Nothing a caller is told can be undone by a power cut:
 * the same promise as `synchronous = FULL`, which paid a sync on the event
 * loop's thread for every commit.
 *
 * A sync that fails leaves it unknown what reached the disk (Linux may drop
 * the pages it could not write), so every wait fails from then on: the store
 * stops, as a database server does, rather than answer from a log that may
 * not be on disk.
 */

/** What the store tells and asks of the group commit. */
export interface GroupSync {
  /** A statement that may have written ran (call after it, inside or outside a transaction). */
  wrote(): void;
  /** Resolves once everything written before the call is on disk; rejects once a sync has failed. */
  durable(): Promise<void>;
  /**
   * Syncs what is left, then calls `closeDb` in the same turn (no write can
   * slip in between), then lets go of what it syncs. A failed sync does not
   * stop the close.
   */
  close(closeDb: () => void): Promise<void>;
}

export interface GroupSyncOptions {
  /** Makes everything written before it started durable. */
  sync(): Promise<void>;
  /** Lets go of the synced file, once closed. */
  release?(): Promise<void>;
  /** Told of the first sync that failed. */
  onFailure?(err: unknown): void;
}

/** The group commit over `opts.sync`. */
export function groupSync(opts: GroupSyncOptions): GroupSync {
  // Writes are numbered in the order they ran; `synced` is the last one known to be on disk.
  let written = 0;
  let synced = 0;
  let inFlight: Promise<void> | null = null;
  let failed: { err: unknown } | null = null;

  const start = (): Promise<void> => {
    // Everything written up to now is committed: a transaction runs to its end
    // synchronously, so no sync starts in the middle of one.
    const covers = written;
    // One sync at a time, and none after a failure: each ends after the last, and the first failure is the only one.
    return opts.sync().then(
      () => { synced = covers; },
      (err: unknown) => {
        failed = { err };
        opts.onFailure?.(err);
      },
    ).finally(() => { inFlight = null; });
  };

  const durable = async (): Promise<void> => {
    const target = written;
    while (synced < target) {
      if (failed) throw failed.err;
      inFlight ??= start();
      await inFlight;
    }
  };

  return {
    wrote: () => { written++; },
    durable,
    close: async (closeDb) => {
      while (synced < written && !failed) await durable().catch(() => {});
      closeDb();
      await inFlight;
      await opts.release?.();
    },
  };
}
