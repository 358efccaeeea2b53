/**
 * One scheduler per embedded data folder. The embedded store is one process's
 * (its log is in that process): a second scheduler on the same `ats.sqlite`
 * would share its jobs with a log of its own. `lockFolder` takes the folder
 * for this process, or says which process holds it.
 *
 * The lock is the operating system's, on the file `ats.lock` in the folder,
 * taken through SQLite (better-sqlite3, which the store already uses): the
 * holder keeps a `BEGIN IMMEDIATE` transaction open on it, SQLite's RESERVED
 * lock (an fcntl lock on Unix, LockFileEx on Windows), which no other
 * connection can take, in this process or another, while anyone may still
 * read the file. The kernel drops it when the process ends, however it ends
 * (a crash, SIGKILL, the OOM killer): no lock outlives its process, so there
 * is no pid to check for being alive, no pid reused by another program (or
 * by the next run of a container, always pid 1) taken for the holder, and no
 * age after which a lock counts as stale. The file also records who holds
 * it (pid, host, since when), for the message that refuses a second start;
 * a record found by a process that got the lock is that of a holder that
 * ended without releasing it: the folder is taken over.
 *
 * Nothing in the holder's process may open `ats.lock` other than through
 * SQLite: closing any descriptor of a file drops all of the process's POSIX
 * locks on it (SQLite's own connections account for that). Deleting the file
 * while a scheduler runs lets a second one start: do not.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';

/** The lock's file, in the data folder. */
export const LOCK_FILE = 'ats.lock';

/** Who holds (or held) a folder. */
export interface Holder {
  pid: number;
  host: string;
  /** When it took the folder (ms since the epoch). */
  since: number;
}

/** What one attempt found: whether it got the operating system's lock, and the holder the file names (null: none, or unreadable). */
export interface Attempt {
  locked: boolean;
  recorded: Holder | null;
}

export type Outcome =
  /** Taken; `tookOverFrom`: a holder that ended without releasing the folder (null when it was free). */
  | { held: true; tookOverFrom: Holder | null }
  /** Held by `holder` (null when the file does not say who yet: one that is taking it this very moment). */
  | { held: false; holder: Holder | null };

/** The decision, pure: the lock is the truth; the record says only who. */
export function judge(attempt: Attempt): Outcome {
  return attempt.locked ? { held: true, tookOverFrom: attempt.recorded } : { held: false, holder: attempt.recorded };
}

/** `pid 1234 on host, since 2026-01-02T03:04:05.000Z`, or `pid unknown`. */
export function describeHolder(holder: Holder | null): string {
  return holder ? `pid ${holder.pid} on ${holder.host}, since ${new Date(holder.since).toISOString()}` : 'pid unknown';
}

/** A folder this process holds. */
export interface FolderLock {
  /** A holder that had ended without releasing the folder: this process took it over. */
  readonly tookOverFrom: Holder | null;
  /** Clears the record and drops the lock; a second call does nothing. */
  release(): void;
}

export type LockResult = { ok: true; lock: FolderLock } | { ok: false; holder: Holder | null };

export interface LockOptions {
  pid: number;
  host: string;
  now?: () => number;
}

/**
 * Takes the folder `dir` (which must exist) for this process, or says who
 * holds it. Never waits for a holder. Throws what SQLite throws for a file it
 * cannot open or write (a folder not writable).
 */
export function lockFolder(dir: string, opts: LockOptions): LockResult {
  const db = new Database(join(dir, LOCK_FILE), { timeout: 0 });
  try {
    const locked = tryBegin(db);
    const outcome = judge({ locked, recorded: recorded(db) });
    if (!outcome.held) {
      db.close();
      return { ok: false, holder: outcome.holder };
    }
    // Record this process, then hold the lock again at once. Between the two a process starting at the same
    // moment may take it: this one's second BEGIN then fails, and it is the one refused.
    db.exec('CREATE TABLE IF NOT EXISTS holder (pid INTEGER NOT NULL, host TEXT NOT NULL, since INTEGER NOT NULL)');
    db.exec('DELETE FROM holder');
    db.prepare('INSERT INTO holder (pid, host, since) VALUES (?, ?, ?)').run(opts.pid, opts.host, (opts.now ?? Date.now)());
    commit(db);
    if (!tryBegin(db)) {
      db.close();
      return { ok: false, holder: null };
    }
    return { ok: true, lock: heldLock(db, outcome.tookOverFrom) };
  } catch (err) {
    if (db.open) db.close();
    throw err;
  }
}

function heldLock(db: Database.Database, tookOverFrom: Holder | null): FolderLock {
  return {
    tookOverFrom,
    release() {
      if (!db.open) return;
      try {
        db.exec('DELETE FROM holder');
        commit(db);
      } catch {
        // Not cleared (a reader held the file past the wait): the next start takes over a record of a
        // process that is gone, as after a crash. The lock itself goes with the close.
      } finally {
        db.close();
      }
    },
  };
}

/** BEGIN IMMEDIATE: true when this connection now holds the lock, false when another does. */
function tryBegin(db: Database.Database): boolean {
  try {
    db.exec('BEGIN IMMEDIATE');
    return true;
  } catch (err) {
    if ((err as { code?: unknown }).code === 'SQLITE_BUSY') return false;
    throw err;
  }
}

/** A commit waits a moment for a reader (a start being refused reads the record). */
function commit(db: Database.Database): void {
  waiting(db, () => db.exec('COMMIT'));
}

/**
 * The holder the file names: null for none, or a file that does not say (new, or its holder writing it).
 * A read waits a moment for a holder's commit of its record.
 */
function recorded(db: Database.Database): Holder | null {
  try {
    const row = waiting(db, () => db.prepare('SELECT pid, host, since FROM holder LIMIT 1').get()) as { pid: unknown; host: unknown; since: unknown } | undefined;
    if (!row || typeof row.pid !== 'number' || typeof row.host !== 'string' || typeof row.since !== 'number') return null;
    return { pid: row.pid, host: row.host, since: row.since };
  } catch {
    return null;
  }
}

/** `step` with SQLite waiting up to 2 s for another connection's lock (the BEGIN that takes the folder never waits). */
function waiting<T>(db: Database.Database, step: () => T): T {
  db.pragma('busy_timeout = 2000');
  try {
    return step();
  } finally {
    db.pragma('busy_timeout = 0');
  }
}
